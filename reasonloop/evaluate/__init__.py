"""Evaluation: suites, metrics (accuracy, pass@k, maj@k, robustness), contamination, run dirs.

    from reasonloop.evaluate import evaluate_suite, load_suite, read_run
"""

from reasonloop.evaluate.metrics import bootstrap_ci, compute_metrics, majority_correct, pass_at_k
from reasonloop.rundir import RUN_FORMAT_VERSION, Run, RunFormatError, read_run, write_run
from reasonloop.evaluate.runner import evaluate_attempts, evaluate_suite
from reasonloop.evaluate.suites import Suite, SuiteError, known_suites, load_suite, suite_problems

__all__ = [
    "RUN_FORMAT_VERSION",
    "Run",
    "RunFormatError",
    "Suite",
    "SuiteError",
    "bootstrap_ci",
    "compute_metrics",
    "evaluate_attempts",
    "evaluate_suite",
    "known_suites",
    "load_suite",
    "majority_correct",
    "pass_at_k",
    "read_run",
    "suite_problems",
    "write_run",
]
