"""reasonloop.train: learn from verified data on TRL — SFT, self-training (STaR / ReST-EM), DPO, GRPO.

    from reasonloop.train import evaluate_accuracy
    from reasonloop.train.sft import SFTSettings, train_sft
    from reasonloop.train.rft import RFTSettings, train_rft
    from reasonloop.train.dpo import DPOSettings, train_dpo
    from reasonloop.train.grpo import GRPOSettings, train_grpo

Heavy libraries (torch, transformers, trl) load only when a trainer runs.
"""

from reasonloop.stats import McNemar, mcnemar
from reasonloop.train.heldout import AccuracyReport, evaluate_accuracy

__all__ = ["AccuracyReport", "McNemar", "evaluate_accuracy", "mcnemar"]
