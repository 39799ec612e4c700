"""Shared test setup: few threads (2 cores, several torch processes), shared data paths."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])  # torch matmuls go through MKL
if os.environ["OMP_NUM_THREADS"] == "1":  # passive waiting would slow a multi-threaded run's small ops
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA} (expected ../shared beside the checkout)")
    return SHARED_DATA


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the lines tests recorded with `record_property("summary", line)` (the learning checks'
    numbers), passed or failed: CI runs pytest without -s, which would hide a print."""
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             if getattr(report, "when", None) == "call"
             for name, value in getattr(report, "user_properties", ()) if name == "summary"]
    if lines:
        terminalreporter.section("summary lines recorded by the tests")
        for line in lines:
            terminalreporter.write_line(line)
