"""Reading the GSM-Symbolic template dialect into its parts (no evaluation here).

`question_annotated` = question text with `{var,default}` placeholders, then sections
`#init:` (`- $x = range(2, 10)`, `- a, b = sample(names, 2)`), `#conditions:`
(`- x < y`) and `#answer:` (also `#answer =`, `#answer: $ans`). `answer_annotated` =
worked solution with `{expr}` placeholders and `<<expr>>` calculator annotations,
ending in `#### {expr}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reasonloop.sources.templates.errors import TemplateError

QUESTION_FIELD = "question_annotated"
SOLUTION_FIELD = "answer_annotated"
ASSIGNMENT = re.compile(r"^((?:\$?[A-Za-z_]\w*\s*,\s*)*\$?[A-Za-z_]\w*)\s*=(?!=)\s*(.*)$", re.S)
DOLLAR_NAME = re.compile(r"\$(?=[A-Za-z_])")
STRING_LITERAL = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
SECTION = re.compile(r"^#\s*(init|conditions|answer)\s*(?::|=)?\s*(.*)$", re.I | re.S)


@dataclass(frozen=True)
class Span:
    """A placeholder `{...}` in a text: its expression, optional default, line and position."""

    expression: str
    default: str | None
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class Line:
    text: str
    line: int


@dataclass
class Sections:
    question: str
    init: list[Line] = field(default_factory=list)
    conditions: list[Line] = field(default_factory=list)
    answer: Line | None = None


def strip_dollars(expression: str) -> str:
    """`$ans` -> `ans` outside string literals (a leading `$` marks a numeric variable)."""
    parts = STRING_LITERAL.split(expression)
    return "".join(part if index % 2 else DOLLAR_NAME.sub("", part) for index, part in enumerate(parts))


def line_of(text: str, position: int, first_line: int = 1) -> int:
    return first_line + text.count("\n", 0, position)


def split_sections(text: str, *, template: str) -> Sections:
    """Cut `question_annotated` into the question text and its `#init/#conditions/#answer` items."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if SECTION.match(line.strip())), len(lines))
    sections = Sections(question="\n".join(lines[:start]).rstrip())
    current = None
    for number, raw in enumerate(lines[start:], start=start + 1):
        stripped = raw.strip()
        if not stripped:
            continue
        header = SECTION.match(stripped) if stripped.startswith("#") else None
        if header:
            current = header.group(1).lower()
            rest = header.group(2).strip()
            if current == "answer":
                if sections.answer is not None:
                    raise TemplateError("more than one #answer", template=template, field=QUESTION_FIELD,
                                        line=number, token=stripped[:40])
                if rest:
                    sections.answer = Line(rest, number)
            elif rest:
                raise TemplateError(f"unexpected text after #{current}:", template=template, field=QUESTION_FIELD,
                                    line=number, token=rest[:40])
            continue
        if stripped.startswith("#"):
            raise TemplateError("unknown section (expected #init:, #conditions: or #answer:)", template=template,
                                field=QUESTION_FIELD, line=number, token=stripped[:40])
        if current == "answer" and sections.answer is None:
            sections.answer = Line(stripped, number)
        elif current in ("init", "conditions") and stripped.startswith("-"):
            getattr(sections, current).append(Line(stripped[1:].strip(), number))
        else:
            raise TemplateError("expected a '- ' item in this section", template=template, field=QUESTION_FIELD,
                                line=number, token=stripped[:40])
    return sections


def split_top_level_comma(content: str) -> tuple[str, str | None]:
    """`n, Benny` -> ('n', 'Benny'); commas inside brackets or quotes do not split."""
    depth, quote = 0, None
    for index, char in enumerate(content):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            return content[:index].strip(), content[index + 1:].strip()
    return content.strip(), None


def find_placeholders(text: str, *, template: str, field_name: str, first_line: int = 1) -> list[Span]:
    """All `{...}` placeholders of a text, checking that braces balance."""
    spans: list[Span] = []
    depth, opened = 0, -1
    for position, char in enumerate(text):
        if char == "{":
            if depth == 0:
                opened = position
            depth += 1
        elif char == "}":
            if depth == 0:
                raise TemplateError("unbalanced braces: '}' without '{'", template=template, field=field_name,
                                    line=line_of(text, position, first_line),
                                    token=text[max(0, position - 20):position + 1])
            depth -= 1
            if depth == 0:
                content = text[opened + 1:position]
                if "\n" in content:
                    break  # a '{' left open swallowed a line break: report it below
                expression, default = split_top_level_comma(content)
                if not expression:
                    raise TemplateError("empty placeholder", template=template, field=field_name,
                                        line=line_of(text, opened, first_line), token="{" + content + "}")
                spans.append(Span(expression, default, line_of(text, opened, first_line), opened, position + 1))
    else:
        if depth == 0:
            return spans
    raise TemplateError("unbalanced braces: '{' without '}'", template=template, field=field_name,
                        line=line_of(text, opened, first_line), token=text[opened:opened + 30].split("\n")[0])
