"""Test-time strategies on the one solve path, found by name in a registry."""

from reasonloop.search.base import (SolveSettings, Strategy, StrategyError, StrategyResult, get_strategy,
                                    register_strategy, strategy_names)

__all__ = ["SolveSettings", "Strategy", "StrategyError", "StrategyResult", "get_strategy", "register_strategy",
           "strategy_names"]
