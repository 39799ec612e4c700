import pytest

from reasonloop.evaluate.suites import (
    SuiteError,
    known_suites,
    load_suite,
    perturbation_names,
    suite_problems,
)
from reasonloop.prompts import CHAT_FORMAT, PLAIN_FORMAT, PromptFormat
from reasonloop.records import RecordError


def test_builtin_suites_are_listed_and_unknown_names_list_them():
    names = known_suites()
    assert {"gsm8k", "math500", "builtin-heldout", "gsm-symbolic"} <= set(names)
    with pytest.raises(SuiteError) as err:
        load_suite("gsm9k")
    assert "unknown suite 'gsm9k'" in str(err.value)
    assert all(name in str(err.value) for name in ("gsm8k", "math500", "builtin-heldout", "gsm-symbolic"))


def test_gsm8k_and_math500_from_local_files(shared_data):
    gsm8k = suite_problems(load_suite("gsm8k"), data=str(shared_data / "gsm8k" / "test.jsonl"))
    assert len(gsm8k) == 1319 and gsm8k[0].answer == "18"
    math500 = suite_problems(load_suite("math500"), data=str(shared_data / "math500" / "test.jsonl"), limit=20)
    assert len(math500) == 20 and math500[0].meta["level"] in range(1, 6)


def test_hub_suite_offline_says_to_pass_a_path(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecordError, match=r"openai/gsm8k: could not load Hub dataset \(offline\? pass --data PATH\)"):
        suite_problems(load_suite("gsm8k"))


def test_suite_file_with_a_typo_names_the_key_and_the_allowed_ones(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("source: {kind: dataset, path: x.jsonl}\nsampling: {temprature: 0.5}\n")
    with pytest.raises(SuiteError, match=r"unknown key 'sampling.temprature'; did you mean 'temperature'\? "
                                         r"allowed: temperature, top_p, max_new_tokens, seed"):
        load_suite(str(path))
    path.write_text("source: {kind: dataset}\nstrategy: best\n")
    with pytest.raises(SuiteError, match=r"field 'strategy': .*unknown strategy 'best' \(did you mean 'best_of_n'\?\); registered: .*greedy.*majority.*sample"):
        load_suite(str(path))
    path.write_text("source: {kind: dataset, path: data.jsonl}\nstrategy: sample\nn: 4\n")
    suite = load_suite(str(path))
    assert suite.name == "mine" and suite.n == 4
    with pytest.raises(SuiteError, match="suite file nope.yaml not found"):
        load_suite("nope.yaml")


def test_strategies_set_samples_and_temperature():
    suite = load_suite("gsm8k")
    greedy = suite.with_strategy()
    assert (greedy.strategy, greedy.n, greedy.sampling.temperature) == ("greedy", 1, 0.0)
    sample = suite.with_strategy("sample", 8)
    params = sample.sampling_params(stop=("\nQuestion:",))
    assert (params.n, params.temperature, params.stop) == (8, 0.7, ("\nQuestion:",))
    assert suite.with_strategy("majority", 5).n == 5
    with pytest.raises(SuiteError, match="greedy draws one sample"):
        suite.with_strategy("greedy", 4)


def test_prompt_format_comes_from_the_model_dir(tmp_path):
    suite = load_suite("gsm8k")
    assert suite.prompt_format(None) == CHAT_FORMAT
    mine = PromptFormat(name="mine", prompt="Q: {question}\nA:", stop=("\nQ:",))
    mine.save(tmp_path)
    assert suite.prompt_format(tmp_path) == mine
    assert suite.model_copy(update={"prompt": "plain"}).prompt_format(tmp_path) == PLAIN_FORMAT


def test_non_template_suite_has_no_perturbation_variants():
    with pytest.raises(SuiteError, match="'gsm8k' is not built from templates"):
        load_suite("gsm8k:rename")


def with_per_template(name, count):
    suite = load_suite(name)
    return suite.model_copy(update={"source": suite.source.model_copy(update={"per_template": count})})


def test_gsm_symbolic_suite_draws_instance_sets_from_a_template_dir(shared_data, caplog):
    templates = str(shared_data / "gsm-symbolic" / "templates" / "symbolic")
    problems = suite_problems(with_per_template("gsm-symbolic", 3), data=templates)
    assert {p.meta["index"] for p in problems} == {0, 1, 2}
    assert len({p.meta["template"] for p in problems}) >= 95
    # the shared directory holds one inconsistent template: skipped, and said so
    assert any("skipped invalid template" in r.getMessage() and "0062" in r.getMessage() for r in caplog.records)


def test_perturbation_variants_hold_originals_and_changed_perturbed_problems():
    assert {"rename", "scale", "noop", "resample"} <= set(perturbation_names())
    assert {"builtin-heldout:rename", "gsm-symbolic:noop"} <= set(known_suites())
    suite = with_per_template("builtin-heldout:rename", 2)
    assert suite.perturb == "rename" and suite.name == "builtin-heldout:rename"
    problems = suite_problems(suite)
    originals = [p for p in problems if not p.meta.get("perturbation")]
    renamed = [p for p in problems if p.meta.get("perturbation") == "rename"]
    assert originals and renamed and len(originals) + len(renamed) == len(problems)
    by_id = {p.id: p for p in originals}
    for problem in renamed:
        base = by_id[problem.meta["base_id"]]
        assert problem.question != base.question and problem.answer == base.answer
    limited = suite_problems(suite, limit=5)
    assert [p.meta.get("perturbation") for p in limited].count("rename") == 5 and len(limited) == 10
    with pytest.raises(SuiteError, match="unknown perturbation 'shout'.*choose one of: noop, rename, resample, scale"):
        load_suite("gsm-symbolic:shout")


def test_repeated_problems_in_a_dataset_are_kept_once_and_logged(tmp_path, caplog):
    data = tmp_path / "data.jsonl"
    rows = ['{"question": "What is 2 + 2?", "answer": "4"}', '{"question": "What is 3 + 3?", "answer": "6"}']
    data.write_text("\n".join(rows + rows[:1]) + "\n")
    suite = tmp_path / "mine.yaml"
    suite.write_text(f"source: {{kind: dataset, path: {data}}}\n")
    problems = suite_problems(load_suite(str(suite)))
    assert [p.answer for p in problems] == ["4", "6"]
    assert "suite mine: 1 problems repeat an earlier problem's id" in caplog.text
