"""The one step splitter: where a worked solution's reasoning steps begin and end.

Process reward labels (`reasonloop.train.prm`), the reward models' step scores, beam search,
MCTS, MMA and the report all cut solutions here, so "step 3" means the same text everywhere.

Rules, in order:
- a line break ends a step (the newline stays with the step it ends);
- within a line, a sentence end — `.`, `!` or `?` (closing quotes/brackets allowed) followed
  by white space — ends a step; the white space starts the next step, so a prefix never ends
  in a dangling space;
- never inside a GSM8K calculator call `<<48/2=24>>`, nor inside a number (`3.5` has no
  white space after its point);
- white space alone is never a step: it joins the step before it (or, at the start, the
  step after it).

The steps concatenate back to the text exactly (`"".join(split_steps(t)) == t`), so step
prefixes are prefixes of the text. A text with no visible character has no steps: callers
record that as an `error` (`NO_STEPS`), never raise.

    split_steps(" 18 - 6 = <<18-6=12>>12 apples. He eats 2.\\n#### 10")
    # [' 18 - 6 = <<18-6=12>>12 apples.', ' He eats 2.\\n', '#### 10']
"""

from __future__ import annotations

import re

NO_STEPS = "the step splitter found no steps in this solution"
CALCULATOR_CALL = re.compile(r"<<[^<>]*>>")
LINE_END = re.compile(r"\n+")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=[ \t]+\S)")


def split_steps(text: str) -> list[str]:
    """The steps of `text`, in order; [] when it has no visible character."""
    if not text.strip():
        return []
    inside_calls = [(m.start(), m.end()) for m in CALCULATOR_CALL.finditer(text)]

    def free(position: int) -> bool:
        return not any(start < position < end for start, end in inside_calls)

    cuts = {m.end() for m in LINE_END.finditer(text)} | {m.end() for m in SENTENCE_END.finditer(text)}
    cuts = sorted(c for c in cuts if 0 < c < len(text) and free(c))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    steps: list[str] = []
    for piece in pieces:
        if steps and not piece.strip():
            steps[-1] += piece
        elif steps and not steps[-1].strip():
            steps[-1] += piece
        else:
            steps.append(piece)
    return steps


def step_prefixes(text: str) -> list[str]:
    """The text up to the end of each step: prefixes[i] ends with step i."""
    prefixes, end = [], ""
    for step in split_steps(text):
        end += step
        prefixes.append(end)
    return prefixes


def first_step(text: str) -> str:
    """The first step of a continuation ('' when it has none): step-level search keeps one step per action."""
    steps = split_steps(text)
    return steps[0] if steps else ""
