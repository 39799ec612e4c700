import json

import pytest

from reasonloop.evaluate.contamination import (
    NgramIndex,
    check_contamination,
    decontaminate,
    overlapping,
    word_ngrams,
    words,
)
from reasonloop.records import Problem, RecordError
from reasonloop.sources.datasets import load_problems

LONG = "Janet's ducks lay 16 eggs per day and she eats three of them for breakfast every morning"


def test_ngrams_normalise_case_and_punctuation():
    grams = word_ngrams(LONG, 13)
    assert len(words(LONG)) == 18 and len(grams) == 18 - 13 + 1
    assert word_ngrams(LONG.upper().replace(" ", "  "), 13) == grams
    assert word_ngrams("Two words.", 13) == {"two words"}
    assert word_ngrams("   ", 13) == set()


def test_index_finds_shared_ngram_and_respects_n():
    index = NgramIndex.build([("a", LONG), ("b", "A completely different question about trains and their speed")], 13)
    text = "Blah blah. " + LONG + " and more"
    assert set(index.matches(text)) == {"a"}
    # 12 shared words are not a 13-gram
    twelve = " ".join(words(LONG)[:12])
    assert index.matches(twelve + " zebra") == {}
    assert set(NgramIndex.build([("a", LONG)], 8).matches(twelve)) == {"a"}


def test_short_items_are_matched_as_a_whole():
    index = NgramIndex.build([("short", "What is 2 plus 3?")], 13)
    assert set(index.matches("Question: what is 2 plus 3 ? Answer: 5")) == {"short"}
    assert index.matches("what is 2 plus 4") == {}


def test_overlapping_pairs():
    pairs = overlapping(["x " + LONG, "nothing here"], ["unrelated", LONG])
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert pairs[0][2] in word_ngrams(LONG)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_decontaminate_removes_leaked_gsm8k_test_questions(tmp_path, shared_data):
    test = load_problems(shared_data / "gsm8k" / "test.jsonl", preset="gsm8k", limit=200).records
    train = load_problems(shared_data / "gsm8k" / "train.jsonl", preset="gsm8k", limit=300).records
    leaked = [test[3], test[77], test[150]]
    rows = [{"question": p.question, "answer": p.answer} for p in train]
    # leak as SFT chat rows, the question reworded around the copied text
    for i, p in zip((10, 100, 250), leaked):
        rows.insert(i, {"messages": [{"role": "user", "content": "Solve: " + p.question.upper()},
                                     {"role": "assistant", "content": "#### " + p.answer}]})
    train_path = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "clean.jsonl"
    report = decontaminate(train_path, {"gsm8k": test}, out)
    assert report.rows == 303
    assert sorted({f.problem_id for f in report.flags}) == sorted(p.id for p in leaked)
    assert report.flagged_lines == [11, 101, 251]
    kept = out.read_text().splitlines()
    assert len(kept) == 300
    assert kept == [json.dumps(r) for r in rows if "messages" not in r]
    # a clean file stays byte-identical
    again = decontaminate(out, {"gsm8k": test}, tmp_path / "clean2.jsonl")
    assert again.flags == [] and (tmp_path / "clean2.jsonl").read_bytes() == out.read_bytes()


def every_sixth_word_changed(text: str) -> str:
    """The same question with no 13 words in a row left as they were (a near miss, not a copy)."""
    return " ".join("zebra" if i % 6 == 5 else word for i, word in enumerate(text.split()))


def test_gsm8k_train_with_planted_test_questions_flags_exactly_those(tmp_path, shared_data):
    """The real train file with known duplicates of test questions planted in it: each is found
    (verbatim, re-cased, inside a longer row) and no other row is flagged, the near misses included."""
    test = load_problems(shared_data / "gsm8k" / "test.jsonl", preset="gsm8k", limit=300).records
    train_lines = (shared_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert check_contamination(shared_data / "gsm8k" / "train.jsonl", {"gsm8k": test}).flags == []  # disjoint splits
    planted = {  # line number in the new file -> (test problem, the row that copies it)
        100: (test[5], {"question": test[5].question, "answer": "#### " + test[5].answer}),
        2000: (test[42], {"question": test[42].question.upper().replace(",", " ;")}),
        5000: (test[299], {"messages": [{"role": "user", "content": "Practice first. " + test[299].question + " Go."}]}),
    }
    near_misses = {300: test[7], 4000: test[120]}
    rows = list(train_lines)
    for line in sorted([*planted, *near_misses]):
        row = planted[line][1] if line in planted else {"question": every_sixth_word_changed(near_misses[line].question)}
        rows.insert(line - 1, json.dumps(row))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    report = check_contamination(path, {"gsm8k": test})

    assert report.rows == 7473 + 5
    assert [(flag.line, flag.problem_id) for flag in report.flags] == [
        (line, problem.id) for line, (problem, _) in sorted(planted.items())]
    assert report.by_suite() == {"gsm8k": 3}
    assert all(len(flag.ngram.split()) == 13 and flag.ngram in word_ngrams(flag.question) for flag in report.flags)


def test_bad_training_file_names_the_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"question": "ok"}\n{"question": broken\n')
    out = tmp_path / "clean.jsonl"
    with pytest.raises(RecordError, match=r"train.jsonl, line 2: malformed JSON"):
        decontaminate(bad, {"s": [Problem(question="q", answer="1")]}, out)
    assert not out.exists()
