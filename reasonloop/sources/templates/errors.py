"""Errors raised while parsing or sampling a template."""

from __future__ import annotations

from reasonloop.errors import ReasonloopError


class TemplateError(ReasonloopError):
    """A bad template: names the template (file), the field and line, and the offending token."""

    def __init__(self, message: str, *, template: str = "<template>", field: str | None = None,
                 line: int | None = None, token: str | None = None) -> None:
        self.message = message
        self.template = template
        self.field = field
        self.line = line
        self.token = token
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.template
        if self.field:
            where += f": {self.field}"
        if self.line is not None:
            where += f" line {self.line}"
        token = f" (token {self.token!r})" if self.token else ""
        return f"{where}: {self.message}{token}"

    def located(self, *, template: str, field: str | None = None, line: int | None = None) -> "TemplateError":
        """The same error with the location filled in where it was still unknown."""
        return TemplateError(self.message, template=template, field=self.field or field,
                             line=self.line if self.line is not None else line, token=self.token)


class EvalError(Exception):
    """An expression failed while being evaluated (wrapped into TemplateError with its location)."""

    def __init__(self, message: str, token: str | None = None) -> None:
        super().__init__(message)
        self.token = token


class Rejected(Exception):
    """A draw that cannot be used (division by zero in a condition): try another one."""
