"""Turning a template file into a compiled `Template`: `parse_template`, `load_template(s)`."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args

from reasonloop.sources.templates.errors import EvalError, TemplateError
from reasonloop.sources.templates.evaluator import Compiled, compile_expression
from reasonloop.sources.templates.parser import (
    ASSIGNMENT, QUESTION_FIELD, SOLUTION_FIELD, Line, Span, find_placeholders, line_of, split_sections,
    strip_dollars,
)
from reasonloop.sources.templates.template import (
    Annotation, Assignment, Condition, Placeholder, Step, Template, Text, equality_sides,
)
from reasonloop.sources.templates.values import as_labeled, unwrap
from reasonloop.text import gsm8k_final_answer

ANNOTATION = re.compile(r"<<(.*?)>>")
FINAL = re.compile(r"^[ \t]*####(.*)$", re.M)
ARITHMETIC_TEXT = re.compile(r"^[\d\s+\-*/().%]*$")


class _Builder:
    def __init__(self, data: dict, name: str) -> None:
        self.data = data
        self.name = name
        self.variables: list[str] = []

    def error(self, message: str, *, field: str = QUESTION_FIELD, line: int | None = None,
              token: str | None = None) -> TemplateError:
        return TemplateError(message, template=self.name, field=field, line=line, token=token)

    def text_field(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"missing or empty field {key!r}", field=key)
        return value

    def compile(self, source: str, *, field: str, line: int, variables: list[str], unknown: str) -> Compiled:
        try:
            return compile_expression(source, variables=variables, unknown=lambda n: unknown.format(name=n))
        except EvalError as exc:
            raise self.error(str(exc), field=field, line=line, token=exc.token) from None

    # ---------------------------------------------------------------- #init

    def assignment(self, line: Line) -> Assignment:
        match = ASSIGNMENT.match(line.text)
        if not match:
            raise self.error("expected 'name = expression' in #init", line=line.line, token=line.text[:40])
        names = [part.strip() for part in match.group(1).split(",")]
        targets = tuple(name.lstrip("$") for name in names)
        for target in targets:
            if target.startswith("__"):
                raise self.error("dunder names are not allowed", line=line.line, token=target)
        source = strip_dollars(match.group(2).strip())
        kind, candidates, count = self.draw_form(source, len(targets), line)
        assignment = Assignment(targets, tuple(name.startswith("$") for name in names), kind, candidates, count, line)
        self.variables.extend(target for target in targets if target not in self.variables)
        return assignment

    def draw_form(self, source: str, n_targets: int, line: Line) -> tuple[str, Compiled, Compiled | None]:
        """`sample(X)` -> one of X; `sample(X, k)` -> k of X; `sample_sequential(X, k)`; else the value itself."""
        unknown = "unknown name {name!r} in #init (not a variable defined above, a pool or a helper)"
        compile_here = lambda text: self.compile(text, field=QUESTION_FIELD, line=line.line,  # noqa: E731
                                                 variables=self.variables, unknown=unknown)
        try:
            tree = ast.parse(source, mode="eval").body
        except SyntaxError:
            tree = None  # compile() below reports the syntax error with its token
        if (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and not tree.keywords
                and tree.func.id in ("sample", "sample_sequential") and 1 <= len(tree.args) <= 2):
            pool = compile_here(ast.unparse(tree.args[0]))
            count = compile_here(ast.unparse(tree.args[1])) if len(tree.args) == 2 else None
            if tree.func.id == "sample_sequential":
                return "sequential", pool, count
            if count is None and n_targets == 1:
                return "one", pool, None
            return "many", pool, count
        compiled = compile_here(source)
        if n_targets != 1:
            return "many", compiled, None
        return "one", compiled, None

    # ---------------------------------------------------------------- text

    def text(self, raw: str, *, field: str, first_line: int, unknown: str) -> Text:
        spans = find_placeholders(raw, template=self.name, field_name=field, first_line=first_line)
        parts: list[str | Placeholder] = []
        position = 0
        for span in spans:
            if span.start > position:
                parts.append(raw[position:span.start])
            parts.append(self.placeholder(span, field=field, unknown=unknown))
            position = span.end
        if position < len(raw):
            parts.append(raw[position:])
        return Text(tuple(parts))

    def placeholder(self, span: Span, *, field: str, unknown: str) -> Placeholder:
        source = strip_dollars(span.expression)
        compiled = self.compile(source, field=field, line=span.line, variables=self.variables, unknown=unknown)
        tree = compiled.tree
        as_fraction = isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Fraction"
        return Placeholder(compiled, span.line, as_fraction, span.default)

    def annotation(self, inner: str, *, first_line: int, unknown: str) -> Annotation:
        self.text(inner, field=SOLUTION_FIELD, first_line=first_line, unknown=unknown)  # checks the whole note
        lhs_raw = split_at_equals(inner)
        lhs = self.text(lhs_raw, field=SOLUTION_FIELD, first_line=first_line, unknown=unknown)
        parts = [calculator_operators(part).replace(",", "") if isinstance(part, str) else part for part in lhs.parts]
        if parts and isinstance(parts[0], str):
            parts[0] = parts[0].lstrip()
        if parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1].rstrip()
        return Annotation(Text(tuple(part for part in parts if part != "")), self.arithmetic(lhs_raw, lhs))

    def arithmetic(self, lhs_raw: str, lhs: Text) -> Compiled | None:
        """The annotation's left side as one expression (`{y}*{k}` -> `(y)*(k)`), or None if it is not arithmetic."""
        literals = [calculator_operators(part).replace(",", "") for part in lhs.parts if isinstance(part, str)]
        if not all(ARITHMETIC_TEXT.match(literal) for literal in literals):
            return None  # words in the annotation (or a placeholder missing its braces): not arithmetic
        pieces = [calculator_operators(part).replace(",", "") if isinstance(part, str)
                  else f"({part.expression.source})" for part in lhs.parts]
        source = "".join(pieces).strip()
        if not source or not re.search(r"\d|\(", source):
            return None
        try:
            return compile_expression(source, variables=self.variables)
        except EvalError:
            return None

    def solution(self, raw: str) -> tuple[tuple, Any]:
        finals = list(FINAL.finditer(raw))
        if not finals:
            raise self.error("answer_annotated has no final '#### ...' line", field=SOLUTION_FIELD,
                             line=raw.count("\n") + 1)
        last = finals[-1]
        unknown = "variable {name!r} is used but never initialised"
        final_line = line_of(raw, last.start())
        final = self.final(last.group(1).strip(), final_line, unknown)
        body = raw[:last.start()]
        parts: list[Any] = []
        position = 0
        for match in ANNOTATION.finditer(body):
            if match.start() > position:
                parts.extend(self.text(body[position:match.start()], field=SOLUTION_FIELD,
                                       first_line=line_of(body, position), unknown=unknown).parts)
            parts.append(self.annotation(match.group(1), first_line=line_of(body, match.start()), unknown=unknown))
            position = match.end()
        if position < len(body):
            parts.extend(self.text(body[position:], field=SOLUTION_FIELD, first_line=line_of(body, position),
                                   unknown=unknown).parts)
        return tuple(parts), final

    def final(self, text: str, line: int, unknown: str) -> Compiled | None:
        if not text:
            raise self.error("empty '####' line", field=SOLUTION_FIELD, line=line)
        spans = find_placeholders(text, template=self.name, field_name=SOLUTION_FIELD, first_line=line)
        if len(spans) == 1 and spans[0].start == 0 and spans[0].end == len(text):
            source = spans[0].expression
        elif not spans:
            source = text.replace(",", "")
        else:
            return None  # mixed text: not checked against #answer
        return self.compile(strip_dollars(source), field=SOLUTION_FIELD, line=line, variables=self.variables,
                            unknown=unknown)

    # ---------------------------------------------------------------- whole template

    def build(self) -> Template:
        question_raw = self.text_field(QUESTION_FIELD)
        solution_raw = self.text_field(SOLUTION_FIELD)
        sections = split_sections(question_raw, template=self.name)
        assignments = [self.assignment(line) for line in sections.init]
        conditions = [condition for line in sections.conditions for condition in self.conditions(line)]
        answer_line = sections.answer
        if answer_line is None:
            raise self.error("missing #answer", line=question_raw.count("\n") + 1)
        answer = self.compile(strip_outer_braces(strip_dollars(answer_line.text)), field=QUESTION_FIELD,
                              line=answer_line.line, variables=self.variables,
                              unknown="unknown name {name!r} in #answer")
        if not sections.question.strip():
            raise self.error("the question text before #init: is empty", line=1)
        question = self.text(sections.question, field=QUESTION_FIELD, first_line=1,
                             unknown="variable {name!r} is used but never initialised")
        solution, final = self.solution(solution_raw)
        plan, constant_checks = make_plan(assignments, conditions)
        return Template(
            id=str(self.data.get("id") or Path(self.name).stem), name=self.name, steps=self.steps(solution_raw),
            question=question, solution=solution, final=final, answer=answer, answer_line=answer_line, plan=plan,
            constant_checks=constant_checks, defaults=defaults_of(question), topic=self.data.get("topic"),
            original_answer=gsm8k_final_answer(self.data["answer"]) if isinstance(self.data.get("answer"), str)
            else None, data=self.data,
        )

    def conditions(self, line: Line) -> list[Condition]:
        """One condition line; `a and b` and `a < b < c` become separate checks so each runs
        as soon as its own variables are drawn."""
        source = strip_dollars(line.text)
        compiled = self.compile(source, field=QUESTION_FIELD, line=line.line, variables=self.variables,
                                unknown="unknown name {name!r} in condition")
        parts = split_conjunction(compiled.tree)
        if len(parts) == 1:
            return [Condition(compiled, line)]
        return [Condition(compile_expression(ast.unparse(part), variables=self.variables), line) for part in parts]

    def steps(self, solution_raw: str) -> int:
        value = self.data.get("steps")
        if value is None:
            body = solution_raw[:list(FINAL.finditer(solution_raw))[-1].start()]
            return max(1, sum(1 for line in body.split("\n") if line.strip()))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(f"'steps' must be a positive integer, got {value!r}", field="steps")
        return value


def calculator_operators(text: str) -> str:
    return text.replace("÷", "/").replace("×", "*")


def split_conjunction(tree: ast.expr) -> list[ast.expr]:
    """`a and b` -> [a, b]; `a < b <= c` -> [a < b, b <= c] (operands are side-effect free)."""
    if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And):
        return [part for value in tree.values for part in split_conjunction(value)]
    if isinstance(tree, ast.Compare) and len(tree.ops) > 1:
        operands = [tree.left, *tree.comparators]
        return [ast.Compare(left=operands[i], ops=[op], comparators=[operands[i + 1]]) for i, op in enumerate(tree.ops)]
    return [tree]


def split_at_equals(inner: str) -> str:
    """The part of an annotation before its first `=` outside braces (`{a}*{b}={a*b}` -> `{a}*{b}`)."""
    depth = 0
    for index, char in enumerate(inner):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "=" and depth == 0 and inner[index + 1:index + 2] != "=" and inner[index - 1:index] not in "<>!=":
            return inner[:index]
    return inner


def strip_outer_braces(text: str) -> str:
    """`#answer: {t + x}` -> `t + x` (a few files wrap the answer in braces)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        inner = text[1:-1]
        depth = 0
        for char in inner:
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth < 0:
                return text
        return inner if depth == 0 else text
    return text


def defaults_of(question: Text) -> dict[str, str]:
    """`{n, Benny}` -> {'n': 'Benny'}: the default each bare variable placeholder shows first."""
    defaults: dict[str, str] = {}
    for part in question.placeholders:
        tree = part.expression.tree
        if isinstance(tree, ast.Name) and part.default is not None:
            defaults.setdefault(tree.id, part.default)
    return defaults


def make_plan(assignments: list[Assignment], conditions: list[Condition]) -> tuple[list[Step], list[Condition]]:
    """Attach each condition to the step that draws its last variable; pick equality solvers."""
    steps = [Step(assignment) for assignment in assignments]
    where = {name: index for index, step in enumerate(steps) for name in step.assignment.targets}
    constant: list[Condition] = []
    for condition in conditions:
        names = condition.expression.names
        if not names:
            constant.append(condition)
            continue
        last = max(where[name] for name in names)
        step = steps[last]
        if len(names) == 1:
            step.assignment = prefiltered(step.assignment, condition)
        solver = as_solver(condition, step)
        if solver is not None and step.solver is None:
            step.solver = solver
        step.checks.append(condition)
    return steps, constant


def prefiltered(assignment: Assignment, condition: Condition) -> Assignment:
    """Drop the candidates a one-variable condition rules out (`divides(m, 15)`), once.

    Drawing uniformly from the kept candidates is the same distribution as drawing from
    all and rejecting, only without the wasted draws. The condition stays a check."""
    candidates = assignment.candidates
    if assignment.kind != "one" or len(assignment.targets) != 1 or not candidates.constant:
        return assignment
    values = candidates.run({})
    if not isinstance(values, (list, tuple, range)) or len(values) > 100_000 or (
            values.__class__ is tuple and len(values) == 2 and isinstance(values[0], str)):
        return assignment
    name = assignment.targets[0]
    kept = [value for value in values if _satisfies(condition, name, as_labeled(value))]
    if not kept or len(kept) == len(values):
        return assignment  # unsatisfiable ones are reported by sampling, with the usual message
    filtered = Compiled(f"{candidates.source} if {condition.expression.source}", lambda env: kept, frozenset(),
                        True, candidates.tree)
    return replace(assignment, candidates=filtered)


def _satisfies(condition: Condition, name: str, value: Any) -> bool:
    try:
        return bool(unwrap(condition.expression.run({name: value})))
    except (ZeroDivisionError, EvalError, ArithmeticError, TypeError, ValueError):
        return False


def as_solver(condition: Condition, step: Step) -> Condition | None:
    tree = condition.expression.tree
    assignment = step.assignment
    if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq)):
        return None
    if assignment.kind != "one" or len(assignment.targets) != 1:
        return None
    return Condition(condition.expression, condition.line, assignment.targets[0], equality_sides(condition))


# ------------------------------------------------------------------- public entry points


AnswerSource = Literal["answer", "solution"]  # where a template's answer comes from (see parse_template)
ANSWER_SOURCES: tuple[str, ...] = get_args(AnswerSource)


def parse_template(data: dict, *, name: str, source_path: str | Path | None = None, check: bool = True,
                   answer_from: AnswerSource = "answer") -> Template:
    """Compile one template (a dict with `question_annotated` and `answer_annotated`).

    `name` is what errors call the template (its file). With `check`, one instance is
    drawn so that errors only visible when evaluating (a non-numeric answer, a type
    error, unsatisfiable conditions) are reported now rather than at generation time.

    `answer_from`: "answer" (default) takes the answer from `#answer:` and keeps only draws whose
    worked solution's `####` line gives the same value, so a file where the two always disagree
    is refused; "solution" takes the answer from the `####` line and does not read `#answer:`
    (for files whose `#answer:` is wrong, as GSM-Symbolic's published instances of such files
    follow their worked solutions). The problems' meta records a non-default choice.
    """
    if not isinstance(data, dict):
        raise TemplateError("a template must be a JSON object", template=name)
    if answer_from not in ANSWER_SOURCES:
        raise TemplateError(f"answer_from must be one of {', '.join(ANSWER_SOURCES)}, got {answer_from!r}", template=name)
    template = _Builder(data, name).build()
    if answer_from == "solution":
        template = answer_from_solution(template)
    template.source_path = Path(source_path) if source_path is not None else None
    if check:
        template.sample(0, 0)
    return template


def answer_from_solution(template: Template) -> Template:
    if template.final is None:
        raise TemplateError("answer_from='solution' needs a '####' line that computes the answer",
                            template=template.name, field=SOLUTION_FIELD)
    return replace(template, answer=template.final, final=None, answer_from="solution")


def load_template(path: str | Path, *, check: bool = True, answer_from: AnswerSource = "answer") -> Template:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TemplateError(f"not valid JSON: {exc.msg}", template=str(path), line=exc.lineno) from None
    except OSError as exc:
        raise TemplateError(f"cannot read: {exc.strerror}", template=str(path)) from None
    return parse_template(data, name=str(path), source_path=path, check=check, answer_from=answer_from)


def load_templates(directory: str | Path, *, skip_invalid: bool = False, check: bool = True,
                   answer_from: AnswerSource = "answer") -> tuple[list[Template], list[TemplateError]]:
    """All `*.json` templates of a directory, sorted by file name (`answer_from`: see `parse_template`).

    Returns the good templates and one TemplateError per bad file. Without
    `skip_invalid`, any bad file raises a TemplateError listing them all.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError("not a directory of template files", template=str(directory))
    templates: list[Template] = []
    errors: list[TemplateError] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            template = load_template(path, check=check, answer_from=answer_from)
        except TemplateError as exc:
            errors.append(exc)
            continue
        if template.id in seen:
            errors.append(TemplateError(f"duplicate template id (also in {seen[template.id]})", template=str(path),
                                        token=template.id))
            continue
        seen[template.id] = str(path)
        templates.append(template)
    if errors and not skip_invalid:
        listing = "; ".join(str(error) for error in errors)
        raise TemplateError(f"{len(errors)} invalid template(s): {listing}", template=str(directory))
    return templates, errors
