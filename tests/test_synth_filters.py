"""Synthesis filters without a model: format, skeletons, MinHash dedup, decontamination,
difficulty band, the agreement rule and its measurement, the chain's refusal, QPO pairs and
the two-proportion test, the back-translation rule checks."""

from __future__ import annotations

import pytest

from reasonloop.records import Problem
from reasonloop.sources.synth import agreement as agreement_module
from reasonloop.sources.synth.agreement import AgreementSettings, agree, agreement_report, agreement_verdicts
from reasonloop.sources.synth.backtranslate import given_numbers, oracle_right, rule_check, solution_prompt
from reasonloop.sources.synth.chain import filter_questions
from reasonloop.sources.synth.filters import (NothingUsable, decontaminate_filter, dedup_filter, difficulty_filter,
                                              format_filter, format_problem, pairwise_jaccard_dedup, skeleton)
from reasonloop.sources.synth.qpo import Scored, distinct, preference_pairs, two_proportion_test
from reasonloop.sources.templates.builtin import builtin_problems

GOOD = "Dana had 72 stickers in her album. At recess she traded away 12 of them. How many stickers are left?"


def q(text: str, **meta) -> Problem:
    return Problem(question=text, answer="", meta={"synth": meta} if meta else {})


@pytest.mark.parametrize("text, reason", [
    (GOOD, None),
    (None, "malformed"),
    ("   ", "empty"),
    (GOOD[:-1] + ".", "no_question_mark"),
    ("How many are 3 and 4?", "too_short"),
    ("Tom has " + "very " * 120 + "many 3 and 4 apples?", "too_long"),
    ("Dana had 72 stickers in her album and gave some away. How many stickers are left now?", "few_numbers"),
    (GOOD + " #### 60", "contains_solution"),
    ("Dana had 72 stickers and traded 12, so 72 - 12 = 60 are left. How many stickers are left?", "contains_solution"),
    ("Dana had 72 stickers and 12 cards in her album. The answer is 60. How many are left now?", "contains_solution"),
])
def test_format_reasons(text, reason):
    assert format_problem(text) == reason


def test_format_filter_counts_each_reason_and_records_the_verdict():
    result = format_filter([q(GOOD), q("No numbers here at all, how many are there?"), q(GOOD + " #### 60")])
    assert result.counts == {"in": 3, "kept": 1, "few_numbers": 1, "contains_solution": 1}
    assert result.kept[0].meta["synth"]["filters"] == {"format": "pass"}


def test_two_instances_of_one_template_share_a_skeleton():
    first, second = builtin_problems(2, seed=0)[:2]
    assert first.meta["vars"]["name"] != second.meta["vars"]["name"]
    assert skeleton(first.question) == skeleton(second.question) == (
        "<name> had <num> stickers in her album . at recess she traded away <num> of them . "
        "how many stickers are left in her album ?")
    assert skeleton("Each box holds $1,250.50 and Mr Okafor pays 15%.") == "each box holds <num> and <name> <name> pays <num> ."


def test_minhash_dedup_removes_instances_that_differ_in_names_and_numbers():
    problems = builtin_problems(3, seed=0)[:6]  # stickers (a name and numbers), bookcase (numbers): 3 each
    result = dedup_filter(problems)
    assert result.counts == {"in": 6, "kept": 2, "near_duplicate": 4}
    assert [p.id for p in result.kept] == [problems[0].id, problems[3].id]
    again = dedup_filter(builtin_problems(2, seed=9)[:20], against=builtin_problems(3, seed=0)[:30])
    assert again.counts == {"in": 20, "kept": 0, "duplicate_of_reference": 20}


def test_minhash_and_the_pairwise_baseline_on_ten_templates():
    # Instances whose other words vary too (soup/stew/curry in a 17-word question: exact Jaccard
    # 0.64) stay apart; the LSH estimate keeps two more of them than exact Jaccard does.
    problems = builtin_problems(3, seed=0)[:30]
    assert dedup_filter(problems).counts == {"in": 30, "kept": 14, "near_duplicate": 16}
    assert len(pairwise_jaccard_dedup(problems)) == 12


def test_decontamination_flags_questions_of_the_named_sets_only():
    heldout = builtin_problems(1, seed=0)[:3]
    clean = "A farmer plants 4 rows of 12 trees each and later sells 9 of the trees at the market. How many remain?"
    candidates = [q(heldout[1].question.upper()), q(clean)]
    result = decontaminate_filter(candidates, {"heldout": heldout})
    assert result.counts == {"in": 2, "kept": 1, "contaminated:heldout": 1}
    assert result.kept[0].meta["synth"]["checked_against"] == ["heldout"]


def test_difficulty_band_on_the_pass_rate():
    items = [q(GOOD, pass_rate=r) for r in (0.0, 0.5, 0.75, 1.0)] + [q(GOOD)]
    result = difficulty_filter(items, min_pass=0.5, max_pass=0.9)
    assert result.counts == {"in": 5, "kept": 2, "too_hard": 1, "too_easy": 1, "no_pass_rate": 1}


def test_agree_counts_abstentions_against_the_share():
    found = agree(["12", "12.0", None, "7", " 12"])
    assert (found.answer, found.votes, found.k, found.share) == ("12", 3, 5, 0.6)
    assert agree(["3", "4"]).answer == "3" and agree([None, None]).answer is None


def test_agreement_sets_the_reference_and_measures_precision():
    problems = [Problem(question=f"Q{i} with 1 and 2 things, how many?", answer=str(a)) for i, a in enumerate([5, 6, 7, 8])]
    answers = [["5"] * 4, ["6", "6", "1", None], ["9", "9", "9", "7"], ["1", "2", "8", None]]
    kept = agreement_verdicts(problems, answers, 0.5)
    assert kept.counts == {"in": 4, "kept": 3, "no_agreement": 1}
    assert [p.answer for p in kept.kept] == ["5", "6", "9"] and kept.kept[1].meta["synth"]["agreement"] == 0.5
    report = agreement_report(problems, answers, 0.75)
    assert (report.accepted, report.accepted_right, report.majority_right, report.rejected_right) == (2, 1, 2, 1)
    assert report.precision == 0.5 and report.rejected_right_rate == 0.5


def test_chain_stops_with_every_count_and_advice_when_nothing_is_solvable(monkeypatch):
    monkeypatch.setattr(agreement_module, "sample_answers", lambda problems, solver, settings: [[None] * 2 for _ in problems])
    candidates = [q(GOOD), q("hello"), q(GOOD.replace("Dana", "Sofia"))]
    with pytest.raises(NothingUsable) as error:
        filter_questions(candidates, "unused", known=[])
    message = str(error.value)
    assert "format: kept 2 of 3 (no_question_mark 1)" in message
    assert "dedup: kept 1 of 2 (near_duplicate 1)" in message
    assert "solvability: kept 0 of 1 (no_answers 1)" in message and "lower the agreement threshold" in message


def test_chain_keeps_provenance_of_every_filter(monkeypatch):
    monkeypatch.setattr(agreement_module, "sample_answers", lambda problems, solver, settings: [["60"] * 8 for _ in problems])
    kept, results = filter_questions([q(GOOD, method="qft", generator="sha256:x")], "unused",
                                     suites={"gsm8k": [Problem(question="Unrelated text here?", answer="1")]})
    assert [r.name for r in results] == ["format", "dedup", "solvability", "difficulty", "decontaminate"]
    meta = kept[0].meta["synth"]
    assert kept[0].answer == "60" and meta["method"] == "qft" and meta["pass_rate"] == 1.0
    assert meta["filters"] == {f: "pass" for f in ("format", "dedup", "solvability", "difficulty", "decontaminate")}


def test_agreement_settings_refuse_nonsense():
    with pytest.raises(Exception, match="threshold"):
        AgreementSettings(threshold=0)


def test_qpo_pairs_prefer_solvable_then_harder():
    scored = [Scored("a?", True, "1", 1.0), Scored("b?", True, "2", 0.6), Scored("c?", True, None, 0.25),
              Scored("d", False, None, 0.0)]
    assert preference_pairs(scored, max_pairs=10) == [("a?", "d"), ("b?", "a?"), ("b?", "d")]  # one unsolvable each, plus an easier one
    assert len(preference_pairs(scored, max_pairs=2)) == 2


def test_distinct_counts_normalised_duplicates_once():
    assert [p.question for p in distinct([q("A b?"), q("a  B ?"), q("c?")])] == ["A b?", "c?"]


def test_two_proportion_test_matches_the_textbook_value():
    result = two_proportion_test(50, 100, 65, 100)
    assert round(result.z, 3) == 2.146 and round(result.p, 4) == 0.0319
    assert two_proportion_test(0, 10, 0, 10).p == 1.0


def test_back_translation_rules():
    problem = builtin_problems(1, seed=0)[0]  # Dana: 72 - 12 = 60
    assert solution_prompt(problem) == "Dana started with 72 stickers and traded away 12, so 72 - 12 = 60 stickers are left. #### 60"
    assert given_numbers(problem) == {"72", "12"}
    assert rule_check(problem, problem.question) is None
    assert rule_check(problem, "Dana had 72 stickers. She traded some. How many are left?") == "missing_number"
    assert rule_check(problem.model_copy(update={"answer": "sixty"}), problem.question) == "answer_malformed"
    pencil, muffins = builtin_problems(1, seed=0, max_steps=2)[8:10]  # 11 * 10 (mm per cm); half of 50: 50 / 2
    assert given_numbers(pencil) == {"11", "10"} and rule_check(pencil, pencil.question) == "missing_number"  # strict
    assert given_numbers(muffins) == {"50", "2"} and rule_check(muffins, muffins.question) is None
    assert oracle_right(problem.question, "Sofia had 12 cards and 72 stickers; how many?")
    assert not oracle_right(problem.question, "Sofia had 12 cards and 70 stickers; how many?")


def test_cli_lists_the_synth_commands_and_refuses_a_bad_eval_set():
    from typer.testing import CliRunner

    from reasonloop.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["synth", "--help"])
    assert all(name in listed.output for name in ("qft", "generate", "qpo", "backtranslate"))
    bad = runner.invoke(app, ["synth", "generate", "--writer", "w", "--solver", "s", "-o", "x.jsonl",
                              "--eval-set", "no-equals-sign"])
    assert bad.exit_code != 0 and "--eval-set takes NAME=PATH" in str(bad.exception)


def test_cli_generate_passes_the_agreement_settings_to_the_filter_chain(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reasonloop.cli import app
    from reasonloop.sources.synth import chain, qft
    from reasonloop.sources.synth.qft import Drawn

    seen = {}

    def fake_filter(candidates, solver, settings, **_):
        seen["agreement"] = settings.agreement
        return [], []

    monkeypatch.setattr(qft, "generate_questions", lambda *a, **kw: Drawn([], {"sampled": 0}))
    monkeypatch.setattr(chain, "filter_questions", fake_filter)
    result = CliRunner().invoke(app, ["synth", "generate", "--writer", "w", "--solver", "s", "-o",
                                      str(tmp_path / "kept.jsonl"), "--k", "32", "--solver-temperature", "1.4",
                                      "--threshold", "0.65625"])
    assert result.exit_code == 0, result.output
    got = seen["agreement"]
    assert (got.k, got.temperature, got.threshold) == (32, 1.4, 0.65625)
