"""Training wiring on a very small model: each trainer runs a few real TRL steps, writes a standard
HF dir with its prompt format, step log and manifest; resume, divergence and bad input."""

from __future__ import annotations

import json
import math

import pytest

from reasonloop.errors import ReasonloopError
from reasonloop.prompts import PLAIN_FORMAT, PROMPT_FILE
from reasonloop.records import Attempt, Problem, Verdict
from reasonloop.train import common, evaluate_accuracy, mcnemar
from reasonloop.train.sampling import Graded


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    from reasonloop.sources.templates.builtin import builtin_problems

    return builtin_problems(1, seed=0, max_steps=3)[:16]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, problems):
    from reasonloop.models.tiny import TinyConfig, create_tiny_model

    texts = [PLAIN_FORMAT.render_prompt(p.question) + PLAIN_FORMAT.render_target(p.solution, p.answer) for p in problems]
    path = create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts,
                             TinyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), vocab_size=300)
    PLAIN_FORMAT.save(path)
    return path


def read_log(path):
    return [json.loads(line) for line in (path / common.TRAIN_LOG).read_text().splitlines()]


def quick(cls, **overrides):
    return cls(**{"max_steps": 2, "batch_size": 8, "save_steps": 1, "logging_steps": 1, **overrides})


def test_sft_writes_a_loadable_checkpoint_with_prompt_format_log_and_manifest(tiny, problems, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasonloop.train.sft import SFTSettings, train_sft

    out = train_sft(tiny, problems, tmp_path / "sft", quick(SFTSettings))
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    assert json.loads((out / PROMPT_FILE).read_text())["prompt"] == PLAIN_FORMAT.prompt
    rows = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2] and all("learning_rate" in r for r in rows)
    manifest = json.loads((out / common.MANIFEST).read_text())
    assert manifest["complete"] and manifest["optimizer_steps"] == 2 and manifest["config"]["max_steps"] == 2
    assert manifest["model_fingerprint"].startswith("sha256:")


def test_sft_targets_strip_calculator_annotations_unless_asked():
    problem = Problem(question="q", answer="24", solution="Half is 48/2 = <<48/2=24>>24.")
    assert common.target_text(problem, PLAIN_FORMAT, annotations=False) == " Half is 48/2 = 24.\n#### 24"
    assert "<<48/2=24>>" in common.target_text(problem, PLAIN_FORMAT, annotations=True)


def test_killed_sft_resumes_from_its_last_checkpoint(tiny, problems, tmp_path, monkeypatch):
    from transformers import Trainer

    from reasonloop.train.sft import SFTSettings, train_sft

    settings = quick(SFTSettings, max_steps=4, save_steps=2)
    original_save = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        if self.state.global_step == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_sft(tiny, problems, tmp_path / "sft", settings)
    monkeypatch.setattr(Trainer, "_save_checkpoint", original_save)
    steps_run = []
    original_step = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: steps_run.append(1) or original_step(self, *a, **k))
    out = train_sft(tiny, problems, tmp_path / "sft", settings)
    assert len(steps_run) == 2  # steps 3 and 4 only
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2, 3, 4]


def test_sft_refuses_problems_without_solutions_before_loading(problems, tmp_path):
    from reasonloop.train.sft import train_sft

    bare = [p.model_copy(update={"solution": None}) for p in problems[:3]]
    with pytest.raises(ReasonloopError, match="3 of 3 problems have no worked solution"):
        train_sft(tmp_path / "no-such-model", bare, tmp_path / "out")


def test_model_without_pad_token_is_refused(tiny, problems, tmp_path):
    import shutil

    from reasonloop.train.sft import train_sft

    model = tmp_path / "nopad"
    shutil.copytree(tiny, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["pad_token"] = None
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ReasonloopError, match="tokenizer has no pad token"):
        train_sft(model, problems, tmp_path / "out")


def test_grpo_logs_reward_and_kl(tiny, problems, tmp_path):
    from reasonloop.train.grpo import GRPOSettings, train_grpo

    out = train_grpo(tiny, problems, tmp_path / "grpo",
                     quick(GRPOSettings, num_generations=4, max_completion_length=16))
    rows = [r for r in read_log(out) if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2] and all("kl" in r and "loss" in r for r in rows)
    assert (out / PROMPT_FILE).is_file() and common.is_complete(out)


def test_grpo_step_weight_adds_the_step_reward_with_its_weight(tiny, problems, tmp_path):
    from reasonloop.train.grpo import GRPOSettings, train_grpo

    functions, weights = GRPOSettings(step_weight=0.5).rewards()
    assert [f.__name__ for f in functions] == ["verifier_reward", "step_reward"] and weights == [1.0, 0.5]
    assert GRPOSettings().rewards()[1] is None
    with pytest.raises(ValueError, match="step_weight must be >= 0"):
        GRPOSettings(step_weight=-1)
    out = train_grpo(tiny, problems, tmp_path / "grpo",
                     quick(GRPOSettings, num_generations=4, max_completion_length=16, max_steps=1, step_weight=0.5))
    rows = [r for r in read_log(out) if "reward" in r]
    assert rows and all(0.0 <= r["rewards/step_reward/mean"] <= 1.0 for r in rows)


def test_grpo_difficulty_filter_trains_only_on_problems_with_mixed_outcomes(tiny, problems, tmp_path, monkeypatch):
    import reasonloop.train.grpo as grpo

    def scripted(model, given, *, k, **options):  # problems 0 and 1 mixed, 2 always right, the rest never
        right = {0: [True, False], 1: [False, True], 2: [True, True]}
        return [graded(p, "x", "correct" if ok else "incorrect", j)
                for i, p in enumerate(given) for j, ok in enumerate(right.get(i, [False] * k))]

    monkeypatch.setattr(grpo, "sample_and_grade", scripted)
    assert grpo.mixed_outcomes(scripted(None, problems, k=2)) == problems[:2]
    out = grpo.train_grpo(tiny, problems, tmp_path / "grpo", quick(grpo.GRPOSettings, num_generations=4, max_steps=1,
                                                                     max_completion_length=8, difficulty_filter_k=2))
    manifest = json.loads((out / common.MANIFEST).read_text())
    assert (manifest["n_problems"], manifest["n_problems_given"]) == (2, len(problems))
    assert len((out / "filter_verdicts.jsonl").read_text().splitlines()) == 2 * len(problems)


def test_grpo_difficulty_filter_with_nothing_to_learn_stops_before_training(tiny, problems, tmp_path):
    from reasonloop.train.grpo import GRPOSettings, train_grpo

    with pytest.raises(ValueError, match="difficulty_filter_k must be 0 \\(off\\) or >= 2"):
        GRPOSettings(difficulty_filter_k=1)
    with pytest.raises(ReasonloopError, match="no problem has mixed outcomes at k=2 \\(0 of 16 always solved, 16 never\\)"):
        train_grpo(tiny, problems, tmp_path / "grpo", quick(GRPOSettings, num_generations=4, max_completion_length=8,
                                                            difficulty_filter_k=2))
    assert not (tmp_path / "grpo" / common.CHECKPOINTS).exists()


def test_grpo_refuses_a_reward_that_is_none_for_everything(tiny, problems, tmp_path):
    from reasonloop.train.grpo import GRPOSettings, train_grpo

    def never_scores(prompts, completions, **columns):
        return [None] * len(completions)

    with pytest.raises(ReasonloopError, match="never_scores returned None for all 8"):
        train_grpo(tiny, problems, tmp_path / "grpo", GRPOSettings(), reward_functions=[never_scores])
    assert not (tmp_path / "grpo" / common.CHECKPOINTS).exists()


def test_grpo_stops_on_nan_and_keeps_the_last_good_checkpoint(tiny, problems, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from reasonloop.train.grpo import GRPOSettings, train_grpo

    original_loss = GRPOTrainer.compute_loss

    def loss_blows_up_at_step_two(self, *args, **kwargs):
        loss = original_loss(self, *args, **kwargs)
        return loss * math.nan if self.state.global_step >= 1 else loss

    monkeypatch.setattr(GRPOTrainer, "compute_loss", loss_blows_up_at_step_two)
    out = tmp_path / "grpo"
    with pytest.raises(common.Diverged, match=r"step 2: .*=nan.*last good checkpoint kept: .*checkpoint-1"):
        train_grpo(tiny, problems, out, quick(GRPOSettings, max_steps=3, num_generations=4, max_completion_length=8))
    assert sorted(p.name for p in (out / common.CHECKPOINTS).glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (out / "model.safetensors").exists()


def test_divergence_guard_stops_before_saving():
    from transformers import TrainerControl, TrainerState

    guard = common.divergence_guard(max_loss=10.0)
    state, control = TrainerState(), TrainerControl(should_save=True)
    state.global_step = 7
    guard.on_log(None, state, control, logs={"loss": 3.0, "grad_norm": 1.0})
    assert guard.problem is None and not control.should_training_stop
    guard.on_log(None, state, control, logs={"loss": 12.0})
    assert guard.problem == "step 7: loss=12.0 > max_loss=10.0"
    assert control.should_training_stop and not control.should_save


def graded(problem: Problem, completion: str, status: str, index: int = 0) -> Graded:
    attempt = Attempt(problem_id=problem.id, prompt="", completion=completion, sample_index=index)
    return Graded(problem, attempt, Verdict(status=status))


def test_keep_verified_dedups_and_caps_per_problem(problems):
    from reasonloop.train.rft import keep_verified

    a, b = problems[:2]
    items = [graded(a, " 1 + 1 = 2\n#### 2", "correct"), graded(a, "1 + 1  = 2\n####  2", "correct"),
             graded(a, " 2 = 2\n#### 2", "correct"), graded(a, " 3 = 2\n#### 2", "correct"),
             graded(a, "wrong\n#### 9", "incorrect"), graded(b, "x\n#### 1", "incorrect")]
    assert keep_verified(items, max_per_problem=2) == {a.id: ["1 + 1 = 2", "2 = 2"]}


def test_keep_verified_with_check_steps_drops_a_right_answer_reached_by_a_wrong_step():
    from reasonloop.train.rft import keep_verified

    problem = Problem(id="bus", question="A bus has 18 riders; 6 get off. How many are left?", answer="12")
    sound, flawed = " 18 - 6 = <<18-6=12>>12 riders.\n#### 12", " 19 - 7 = <<19-7=12>>12 riders.\n#### 12"
    items = [graded(problem, flawed, "correct"), graded(problem, sound, "correct", 1)]
    assert keep_verified(items, max_per_problem=2) == {"bus": ["19 - 7 = <<19-7=12>>12 riders.",
                                                              "18 - 6 = <<18-6=12>>12 riders."]}
    assert keep_verified(items, max_per_problem=2, check_steps=True) == {"bus": ["18 - 6 = <<18-6=12>>12 riders."]}


def test_preference_pairs_pair_correct_with_incorrect_of_the_same_problem(problems):
    from reasonloop.train.dpo import preference_pairs

    a, b = problems[:2]
    items = [graded(a, "good", "correct"), graded(a, "bad", "incorrect"), graded(a, "slow", "timeout"),
             graded(b, "good b", "correct"), graded(b, "good b2", "correct")]
    assert preference_pairs(items, pairs_per_problem=3) == [(a, "good", "bad")]


def gold_sampler(solved_every: int):
    """Stands in for sampling: problem i is solved (its gold solution) when i % solved_every == 0."""

    def sample(model_dir, problems, *, k, temperature, seed, hint=False, **kwargs):
        out = []
        for i, p in enumerate(problems):
            good = i % solved_every == 0
            out.append(graded(p, PLAIN_FORMAT.render_target(p.solution, p.answer), "correct" if good else "incorrect"))
            out.append(graded(p, " 1 + 1 = 3\n#### 3", "incorrect", 1))
        return out

    return sample


def test_rft_rounds_table_and_resume(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import rft
    from reasonloop.train.sft import SFTSettings

    monkeypatch.setattr(rft, "sample_and_grade", gold_sampler(2))
    settings = rft.RFTSettings(rounds=2, k=2, sft=quick(SFTSettings, max_steps=1))
    result = rft.train_rft(tiny, problems, tmp_path / "rft", settings, heldout=problems[:4])
    assert [(r.round, r.solved, r.kept, r.optimizer_steps) for r in result.rounds] == [(1, 8, 8, 1), (2, 8, 8, 1)]
    assert result.model_dir == tmp_path / "rft" / "round-2" and (result.model_dir / "model.safetensors").is_file()
    assert "held-out" in result.table() and all(r.heldout_accuracy is not None for r in result.rounds)
    assert [row["round"] for row in read_log(tmp_path / "rft")] == [1, 2]
    (tmp_path / "rft" / "round-2" / rft.ROUND_FILE).unlink()  # killed after sampling round 2
    monkeypatch.setattr(rft, "sample_and_grade", lambda *a, **k: pytest.fail("saved samples must be reused"))
    assert rft.train_rft(tiny, problems, tmp_path / "rft", settings, heldout=problems[:4]).rounds == result.rounds
    monkeypatch.setattr(rft, "run_round", lambda *a, **k: pytest.fail("finished rounds must not run again"))
    assert rft.train_rft(tiny, problems, tmp_path / "rft", settings).rounds == result.rounds


def test_rationalization_retries_unsolved_problems_with_the_answer_as_hint(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import rft
    from reasonloop.train.sft import SFTSettings

    hinted_calls = []
    plain = gold_sampler(4)

    def sampler(model_dir, chosen, *, hint=False, **kwargs):
        if hint:
            hinted_calls.append(len(chosen))
            return gold_sampler(1)(model_dir, chosen, **kwargs)
        return plain(model_dir, chosen, **kwargs)

    monkeypatch.setattr(rft, "sample_and_grade", sampler)
    settings = rft.RFTSettings(rounds=1, k=2, rationalize=True, sft=quick(SFTSettings, max_steps=1))
    stats = rft.train_rft(tiny, problems, tmp_path / "rft", settings).rounds[0]
    assert hinted_calls == [12] and (stats.solved, stats.rationalized, stats.kept) == (4, 12, 16)


def test_rft_replay_adds_worked_solutions_to_every_round(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import rft
    from reasonloop.train.sft import SFTSettings

    trained_on, real_train_sft = [], rft.train_sft

    def spy(start, chosen, out, settings):
        trained_on.append(sorted(p.id for p in chosen))
        return real_train_sft(start, chosen, out, settings)

    monkeypatch.setattr(rft, "sample_and_grade", gold_sampler(4))
    monkeypatch.setattr(rft, "train_sft", spy)
    replay = problems[:3]
    settings = rft.RFTSettings(rounds=2, k=2, sft=quick(SFTSettings, max_steps=1))
    rft.train_rft(tiny, problems, tmp_path / "rft", settings, replay=replay)
    kept = [f"{p.id}-s0" for i, p in enumerate(problems) if i % 4 == 0]
    assert trained_on == [sorted(kept + [p.id for p in replay])] * 2
    unsolved = [p.model_copy(update={"solution": None}) for p in replay]
    monkeypatch.setattr(rft, "sample_and_grade", lambda *a, **k: pytest.fail("replay must be checked before sampling"))
    with pytest.raises(ReasonloopError, match="rft replay: 3 of 3 problems have no worked solution"):
        rft.train_rft(tiny, problems, tmp_path / "rft2", settings, replay=unsolved)


def test_rft_with_nothing_solved_says_what_to_do(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import rft

    monkeypatch.setattr(rft, "sample_and_grade", gold_sampler(10**9 + 1))
    monkeypatch.setattr(rft, "keep_verified", lambda *args: {})
    with pytest.raises(ReasonloopError, match="0 of 16 problems solved at k=4 — raise k or temperature"):
        rft.train_rft(tiny, problems, tmp_path / "rft", rft.RFTSettings(k=4))


def test_dpo_trains_on_pairs_against_an_explicit_reference(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import dpo

    monkeypatch.setattr(dpo, "sample_and_grade", gold_sampler(1))
    out = dpo.train_dpo(tiny, problems, tmp_path / "dpo", quick(dpo.DPOSettings))
    manifest = json.loads((out / common.MANIFEST).read_text())
    assert manifest["pairs"] == 16 and manifest["optimizer_steps"] == 2
    assert any("loss" in row for row in read_log(out)) and (out / "model.safetensors").is_file()


def test_evaluate_accuracy_breaks_down_by_steps(tiny, problems):
    report = evaluate_accuracy(tiny, problems[:6], max_new_tokens=8)
    assert report.n == 6 and sum(t for _, t in report.by_steps().values()) == 6
    assert "accuracy" in report.summary() and len(report.completions) == 6


def test_mcnemar_exact_p_values():
    result = mcnemar([False] * 10 + [True] * 5, [True] * 10 + [True] * 5)
    assert (result.only_a, result.only_b) == (0, 10) and result.p_value == pytest.approx(2 / 1024)
    assert mcnemar([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar([True], [])


def test_cli_sets_settings_and_refuses_unknown_ones(tiny, problems, tmp_path):
    from typer.testing import CliRunner

    from reasonloop.cli import app
    from reasonloop.records import write_records

    data = tmp_path / "problems.jsonl"
    write_records(data, problems)
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--data", str(data), "--out", str(tmp_path / "o"),
                              "--set", "epoch=2"])
    assert bad.exit_code != 0 and "unknown sft setting; allowed:" in str(bad.exception)
    ok = runner.invoke(app, ["train", "sft", "--model", str(tiny), "--data", str(data), "--out", str(tmp_path / "o"),
                             "--limit", "8", "--set", "max_steps=1", "--set", "batch_size=4", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output[ok.output.rindex("{\n"):])["model"] == str(tmp_path / "o")
    assert json.loads((tmp_path / "o" / common.MANIFEST).read_text())["n_problems"] == 8


def test_dpo_without_pairs_says_why(tiny, problems, tmp_path, monkeypatch):
    from reasonloop.train import dpo

    monkeypatch.setattr(dpo, "sample_and_grade", gold_sampler(10**9 + 1))
    monkeypatch.setattr(dpo, "preference_pairs", lambda graded, cap: [])
    with pytest.raises(ReasonloopError, match=r"no preference pairs .* among 16 problems at k=4; 1 had a correct"):
        dpo.train_dpo(tiny, problems, tmp_path / "dpo", dpo.DPOSettings())


def test_trainers_are_found_by_name_with_their_settings_and_unknown_names_list_the_registered():
    from reasonloop.train.registry import TrainerError, get_trainer, trainer_names
    from reasonloop.train.rft import RFTSettings, train_rft
    from reasonloop.train.sft import SFTSettings, train_sft

    assert (get_trainer("sft").settings, get_trainer("sft").train) == (SFTSettings, train_sft)
    assert (get_trainer("rft").settings, get_trainer("rft").train) == (RFTSettings, train_rft)
    assert list(get_trainer("rft").inputs) == ["heldout", "replay"]
    assert set(trainer_names()) >= {"dpo", "grpo", "rft", "sft"} and trainer_names() == sorted(trainer_names())
    with pytest.raises(TrainerError, match=f"unknown trainer 'ppo'; registered: {', '.join(trainer_names())}$"):
        get_trainer("ppo")
    with pytest.raises(TrainerError, match="grpo reads no 'heldout' problems; it reads: only its training problems"):
        get_trainer("grpo").run("m", [], "out", None, heldout=[])


def test_train_command_lists_every_registered_trainer_with_its_options():
    from typer.testing import CliRunner

    from reasonloop.cli import app
    from reasonloop.train.registry import get_trainer, trainer_names

    runner = CliRunner()
    listing = runner.invoke(app, ["train", "--help"], terminal_width=200)
    for name in trainer_names():
        assert any(line.split()[1:3] == [name, get_trainer(name).help.split()[0]]
                   for line in listing.output.splitlines() if len(line.split()) > 2), listing.output
    rft_help = runner.invoke(app, ["train", "rft", "--help"], terminal_width=200).output
    dpo_help = runner.invoke(app, ["train", "dpo", "--help"], terminal_width=200).output
    assert "--heldout" in rft_help and "--replay" in rft_help and "--heldout" not in dpo_help
