"""Math-Shepherd labels on the solve path, a PRM trained through transformers' Trainer on the
tiny Llama, its scores, and MMA over two tiny models."""

import json

import pytest

from reasonloop.prompts import PLAIN_FORMAT
from reasonloop.search import SolveSettings
from reasonloop.solve import CachedSampler, solve
from tests.test_search_strategies import PROBLEMS, StepScript

torch = pytest.importorskip("torch")

TEXTS = [f"Question: What is {i} + {i}?\nAnswer: {i} + {i} = {2 * i}.\n#### {2 * i}" for i in range(60)]


def test_shepherd_labels_hard_any_soft_share_and_errors_recorded():
    from reasonloop.train.prm import shepherd_labels

    sampler = CachedSampler(StepScript(), PLAIN_FORMAT, "steps-1")
    labels = shepherd_labels(PROBLEMS, sampler, SolveSettings(strategy="sample", n=2, temperature=0.8),
                             solutions=2, completions=3)
    assert len(labels) == 6
    first = labels[0]
    assert first.steps in ([" 1 + 1 = 2.\n", "#### 2"], [" 1 + 1 = 3.\n", "#### 3"])
    for item in labels:
        right = item.steps[0].endswith(f"= {2 * int(item.steps[0].split()[0])}.\n")
        assert item.hard == [int(right)] * 2 and item.soft == [float(right)] * 2 and item.outcome == right
    empty = shepherd_labels(PROBLEMS[:1], CachedSampler(StepScript(empty=True), PLAIN_FORMAT, "e"),
                            SolveSettings(strategy="sample", n=1, temperature=0.8), solutions=1, completions=2)
    assert empty[0].error == "the step splitter found no steps in this solution" and empty[0].hard == []


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    config = TinyConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=96)
    root = tmp_path_factory.mktemp("tiny")
    first = create_tiny_model(root / "a", TEXTS, config, vocab_size=300, seed=1)
    second = create_tiny_model(root / "b", TEXTS, config, vocab_size=300, seed=2)
    for model in (first, second):
        PLAIN_FORMAT.save(model)
    return first, second


def test_a_prm_learns_step_labels_through_the_trainer(tiny_pair, tmp_path):
    from reasonloop.search.reward import RewardModel
    from reasonloop.train.prm import PRMSettings, StepLabels, fit_reward_model, training_rows
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_pair[0])
    labels = []
    for i in range(1, 40):
        good = i % 2 == 0
        total = 2 * i if good else 2 * i + 1
        labels.append(StepLabels(str(i), f"Question: What is {i} + {i}?\nAnswer:", [f" {i} + {i} = {total}.\n", f"#### {total}"],
                                 hard=[int(good)] * 2, soft=[float(good)] * 2, outcome=good))
    rows = training_rows(labels, tokenizer, "prm", 96)
    assert sum(label != -100 for label in rows[0]["labels"]) == 2  # one label per step, at its last token
    assert tokenizer.decode([rows[0]["input_ids"][i] for i, l in enumerate(rows[0]["labels"]) if l != -100]) == ".3"
    settings = PRMSettings(max_steps=60, learning_rate=3e-3, batch_size=8, save_steps=1000, logging_steps=20)
    fit_reward_model(tiny_pair[0], rows, tmp_path / "prm", settings)
    model = RewardModel.load(tmp_path / "prm")
    assert json.loads((tmp_path / "prm" / "reasonloop_reward.json").read_text())["kind"] == "prm"
    scores = model.step_scores(["Question: What is 50 + 50?\nAnswer:"] * 2,
                               [[" 50 + 50 = 100.\n", "#### 100"], [" 50 + 50 = 101.\n", "#### 101"]])
    assert scores[0][0] > scores[1][0]  # a held-out right step beats the wrong one


def test_mma_over_two_tiny_models_writes_rewrites_and_scores_by_cross_inspection(tiny_pair):
    from reasonloop.models import load_generator

    generator = load_generator(str(tiny_pair[0]))
    settings = SolveSettings(strategy=f"mma:models={tiny_pair[1]},iterations=6", n=1, temperature=1.0,
                             max_new_tokens=12, budget=200)
    solved = solve(PROBLEMS[:1], generator, settings, prompt_format=PLAIN_FORMAT)
    result = solved.results[0]
    actions = {child["action"] for child in result.tree["children"]}
    assert {"m0:write", "m1:write"} <= actions
    assert result.reward_calls > 0 and result.calls >= 2
    assert all(0 < a.reward <= 1 for a in result.candidates)


def test_train_prm_is_registered_and_runs_end_to_end(tiny_pair, tmp_path):
    from reasonloop.records import Problem
    from reasonloop.search.reward import RewardModel
    from reasonloop.train.prm import PRMSettings
    from reasonloop.train.registry import get_trainer

    problems = [Problem(question=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(3)]
    settings = PRMSettings(kind="orm", solutions=2, completions=2, max_new_tokens=12, max_steps=2, save_steps=1000)
    result = get_trainer("prm").run(tiny_pair[0], problems, tmp_path / "orm", settings)
    labels = [json.loads(line) for line in (tmp_path / "orm" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 6 and all(len(row["hard"]) == len(row["steps"]) for row in labels if not row["error"])
    assert RewardModel.load(result.model_dir).kind == "orm"


def test_corrupted_copies_of_correct_solutions_are_wrong_from_the_changed_operand_on():
    from dataclasses import replace

    from reasonloop.records import Problem
    from reasonloop.sources.templates import builtin_templates, generate_problems
    from reasonloop.train.prm import PRMSettings, StepLabels, corrupted_labels, gold_labels
    from reasonloop.verify.extract import extract_answer
    from reasonloop.verify.steps import NUMBER, check_steps

    fmt = replace(PLAIN_FORMAT, calculator=True)
    problems = generate_problems(builtin_templates(max_steps=3), per_template=1, seed=6)
    golds = gold_labels([*problems, Problem(question="What is 2 + 3?", answer="5")], fmt)  # stand-ins for right samples
    assert len(golds) == len(problems) and all(item.hard == [1] * len(item.steps) and item.outcome for item in golds)
    right = {item.problem_id: item for item in golds}
    wrong_one = replace(right[problems[0].id], outcome=False)
    failed = StepLabels(problems[1].id, "", [], error="the step splitter found no steps in this solution")
    swapped = corrupted_labels([*right.values(), wrong_one, failed], problems, 3, seed=0)
    assert len(swapped) > len(problems)  # most templates give several distinct swaps
    assert {item.problem_id for item in swapped} <= set(right) and not any(item.outcome for item in swapped)
    by_id = {p.id: p for p in problems}
    for item in swapped:
        original = right[item.problem_id].steps
        first = next(i for i, (a, b) in enumerate(zip(original, item.steps)) if a != b)
        assert item.hard == [1] * first + [0] * (len(item.steps) - first) and item.soft == [float(h) for h in item.hard]
        assert extract_answer("".join(item.steps)) != by_id[item.problem_id].answer
        assert check_steps(by_id[item.problem_id].question, "".join(item.steps)).consistent  # a question number: unseen by the rule
    per_problem = [sum(item.problem_id == p.id for item in swapped) for p in problems]
    assert max(per_problem) == 3  # the wrong and the failed solution add none (problem 0 would have 6)
    assert len({"".join(item.steps) for item in swapped}) == len(swapped)
    slipped = corrupted_labels(list(right.values()), problems, 0, slips=2, seed=0)
    assert len(slipped) > len(problems) // 2
    for item in slipped:
        first = item.hard.index(0)
        assert item.hard == [1] * first + [0] * (len(item.steps) - first)
        known = set(NUMBER.findall(by_id[item.problem_id].question + "".join(right[item.problem_id].steps)))
        assert set(NUMBER.findall("".join(item.steps))) - known  # a number from nowhere
    with pytest.raises(ValueError, match="gold_swaps"):
        PRMSettings(gold_swaps=-1)


def test_train_prm_adds_worked_solutions_and_their_swapped_copies(tiny_pair, tmp_path):
    import shutil
    from dataclasses import replace

    from reasonloop.records import Problem
    from reasonloop.train.prm import PRMSettings, train_prm

    model = tmp_path / "model"
    shutil.copytree(tiny_pair[0], model)
    replace(PLAIN_FORMAT, calculator=True).save(model)
    problems = [Problem(question=f"Tom has {i} bags of {i + 2} apples and {i + 5} pears. How many fruits?",
                        answer=str(i * (i + 2) + i + 5),
                        solution=f"{i} * {i + 2} = <<{i}*{i + 2}={i * (i + 2)}>>{i * (i + 2)} apples.\n"
                                 f"{i * (i + 2)} + {i + 5} = <<{i * (i + 2)}+{i + 5}={i * (i + 2) + i + 5}>>{i * (i + 2) + i + 5} fruits.")
                for i in (3, 4)]
    settings = PRMSettings(solutions=1, completions=1, max_new_tokens=8, max_steps=2, save_steps=1000, gold_swaps=2)
    train_prm(model, problems, tmp_path / "prm", settings)
    rows = [json.loads(line) for line in (tmp_path / "prm" / "labels.jsonl").read_text().splitlines()]
    golds = [row for row in rows if row["outcome"] and all(row["hard"]) and "<<" in "".join(row["steps"])]
    swapped = [row for row in rows if not row["outcome"] and "<<" in "".join(row["steps"])]
    assert len(golds) == 2 and 2 <= len(swapped) <= 4
    assert all(row["hard"][-1] == 0 for row in swapped)
