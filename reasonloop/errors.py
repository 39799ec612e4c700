"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class ReasonloopError(Exception):
    """Base for user-facing errors raised by reasonloop (bad config, bad input, missing model)."""


class ModelError(RuntimeError):
    """A model could not be loaded or asked: the message names the model/URL and the limit.
    (Defined here, the lowest layer, so the CLI's error list needs nothing above it;
    `reasonloop.models` re-exports it.)"""


def user_errors() -> tuple[type[BaseException], ...]:
    from reasonloop.records import RecordError

    return (ReasonloopError, RecordError, ModelError, FileNotFoundError, ValueError)


USER_ERRORS = user_errors()
