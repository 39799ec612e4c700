"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class ReasonloopError(Exception):
    """Base for user-facing errors raised by reasonloop (bad config, bad input, missing model)."""


def user_errors() -> tuple[type[BaseException], ...]:
    from reasonloop.models.base import ModelError
    from reasonloop.records import RecordError

    return (ReasonloopError, RecordError, ModelError, FileNotFoundError, ValueError)


USER_ERRORS = user_errors()
