"""The one step splitter: lines, sentences, calculator calls kept whole, lossless."""

import json

from reasonloop.search.steps import first_step, split_steps, step_prefixes


def test_lines_and_sentences_are_steps_and_calculator_calls_stay_whole():
    text = " 18 - 6 = <<18-6=12>>12 apples. He eats 2.\n#### 10"
    assert split_steps(text) == [" 18 - 6 = <<18-6=12>>12 apples.", " He eats 2.\n", "#### 10"]


def test_never_splits_inside_a_call_or_a_number():
    assert split_steps("<<a. B=3>>3 and 3.5 more") == ["<<a. B=3>>3 and 3.5 more"]
    assert split_steps("He pays <<3.5*2=7.0>>7.0 dollars. Then!\n\n  #### 3") == [
        "He pays <<3.5*2=7.0>>7.0 dollars.", " Then!\n\n", "  #### 3"]


def test_white_space_is_never_a_step_and_blank_text_has_none():
    assert split_steps("   \n ") == [] and split_steps("") == []
    assert split_steps("\n\nabc") == ["\n\nabc"]
    assert first_step("  \n") == "" and first_step("One. Two.") == "One."


def test_step_prefixes_end_at_each_step():
    assert step_prefixes("A.\nB. C") == ["A.\n", "A.\nB.", "A.\nB. C"]


def test_every_gsm8k_train_solution_round_trips(shared_data):
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:500]]
    for row in rows:
        steps = split_steps(row["answer"])
        assert "".join(steps) == row["answer"]
        assert all(s.strip() for s in steps)
        assert all(s.count("<<") == s.count(">>") for s in steps)
    # 2,343 lines; 44 lines hold two sentences
    assert sum(len(split_steps(r["answer"])) for r in rows) == 2387
