"""reasonloop.report: the self-contained offline HTML report over run directories."""

from reasonloop.report.build import build_report
from reasonloop.report.rundata import RunData, load_run

__all__ = ["build_report", "load_run", "RunData"]
