"""Running recipes: every stage cached, a changed setting recomputes only what it changes,
the manifest says how to rerun, and `reasonloop cache ls|gc` see what runs left."""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from reasonloop.cache import ItemCache
from reasonloop.pipeline.cache_admin import cache_stats, collect_garbage
from reasonloop.pipeline.recipe import parse_recipe
from reasonloop.pipeline.engine import run_recipe
from reasonloop.records import Attempt, Problem, Verdict, load


def small_recipe(shared_data, **changes):
    gsm8k = str(shared_data / "gsm8k" / "test.jsonl")
    recipe = {
        "name": "small",
        "seed": 3,
        "executor": {"kind": "inline"},
        "stages": [
            {"name": "train_set", "kind": "problems", "source": gsm8k, "preset": "gsm8k", "limit": 24},
            {"name": "heldout", "kind": "problems", "source": str(shared_data / "gsm8k" / "train.jsonl"), "preset": "gsm8k",
             "limit": 8, "exclude": ["train_set"]},
            {"name": "tiny", "kind": "tiny_model", "corpus": ["train_set"], "vocab_size": 300,
             "config": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
            {"name": "solve", "kind": "solve", "model": "tiny", "problems": "train_set", "samples": 2,
             "temperature": 1.0, "max_new_tokens": 6, "batch_size": 8},
            {"name": "verify", "kind": "verify", "attempts": "solve", "batch_size": 16},
            {"name": "eval", "kind": "evaluate", "model": "tiny", "problems": ["heldout"], "max_new_tokens": 6},
        ],
    }
    recipe.update(changes)
    return recipe


class ComputedItems:
    """A progress callback that counts the items each stage actually computed."""

    def __init__(self):
        self.counts = Counter()

    def __call__(self, label, total, done):
        def advance(n):
            if not label.startswith("stage "):  # one bar per stage, besides the per-item ones
                self.counts[label] += n

        return advance


def run(raw, tmp_path, overrides=()):
    computed = ComputedItems()
    result = run_recipe(parse_recipe(raw, list(overrides)), tmp_path / "run", cache_dir=tmp_path / "cache",
                        progress=computed, log=lambda line: None)
    return result, computed.counts


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, shared_data):
    """One cold run (tiny model built, everything computed), copied by each test."""
    root = tmp_path_factory.mktemp("baseline")
    result, computed = run(small_recipe(shared_data), root)
    return root, result, computed


@pytest.fixture
def warm(baseline, tmp_path):
    root, result, _ = baseline
    for name in ("run", "cache"):
        shutil.copytree(root / name, tmp_path / name)
    return result


def read_bytes(result, *names):
    return {name: open(result.outputs[name].path, "rb").read() for name in names}


def graded_pairs(result):
    answers = {p.id: p.answer for p in load(result.outputs["train_set"].path, Problem)}
    return {(a.completion, answers[a.problem_id]) for a in load(result.outputs["solve"].path, Attempt)}


def test_second_run_reuses_every_stage_and_gives_the_same_bytes(baseline, warm, tmp_path, shared_data):
    _, first, computed = baseline
    attempts = load(first.outputs["solve"].path, Attempt)
    verdicts = load(first.outputs["verify"].path, Verdict)
    answers = {p.id: p.answer for p in load(first.outputs["train_set"].path, Problem)}
    distinct_pairs = {(a.completion, answers[a.problem_id]) for a in attempts}
    assert computed == {"solve": 24, "verify": len(distinct_pairs), "eval:heldout": 8, "eval:heldout verify": 8}
    assert len(attempts) == len(verdicts) == 48 and {a.sample_index for a in attempts} == {0, 1}
    assert [(v.problem_id, v.sample_index) for v in verdicts] == [(a.problem_id, a.sample_index) for a in attempts]
    second, computed = run(small_recipe(shared_data), tmp_path)
    assert computed == {} and {t["status"] for t in second.timings.values()} == {"cached"}
    assert read_bytes(first, "solve", "verify") == read_bytes(second, "solve", "verify")
    (tmp_path / "run" / "solve" / "stage.json").unlink()
    (tmp_path / "run" / "verify" / "stage.json").unlink()
    third, computed = run(small_recipe(shared_data), tmp_path)  # stages run again, every item from the cache
    assert computed == {} and third.timings["solve"]["status"] == "computed"
    assert read_bytes(first, "solve", "verify") == read_bytes(third, "solve", "verify")


def test_changed_setting_recomputes_only_the_items_it_changes(baseline, warm, tmp_path, shared_data):
    _, first, _ = baseline
    more, computed = run(small_recipe(shared_data), tmp_path, ["stages.solve.limit=12", "stages.eval.limit=4"])
    assert computed == {}  # fewer problems: all cached
    more, computed = run(small_recipe(shared_data), tmp_path, ["stages.solve.samples=3"])
    new_pairs = graded_pairs(more) - graded_pairs(first)
    assert computed == Counter({"solve": 24, "verify": len(new_pairs)})  # only pairs never graded before
    old_samples = [a for a in load(more.outputs["solve"].path, Attempt) if a.sample_index < 2]
    assert old_samples == load(first.outputs["solve"].path, Attempt)  # per-sample seeds: same first two samples
    graded, computed = run(small_recipe(shared_data), tmp_path, ["stages.verify.timeout=9"])
    assert computed == {"verify": computed["verify"]} and computed["verify"] > 0  # grading setting: no sampling again
    assert read_bytes(first, "solve") == read_bytes(graded, "solve")


def test_manifest_records_what_is_needed_to_rerun(baseline):
    _, result, _ = baseline
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["complete"] and manifest["kind"] == "pipeline" and manifest["reasonloop_version"]
    assert manifest["config"]["stages"][3]["temperature"] == 1.0 and manifest["config"]["seed"] == 3
    assert manifest["seeds"] == {name: 3 for name in ("train_set", "heldout", "tiny", "solve", "verify", "eval")}
    assert manifest["model_fingerprints"]["tiny"] == result.outputs["tiny"].fingerprint
    assert manifest["verifier_version"] and {"torch", "transformers", "trl"} <= set(manifest["packages"])
    eval_run = result.run_dir / "eval" / "eval.heldout"
    assert json.loads((eval_run / "metrics.json").read_text())["n_problems"] == 8
    assert json.loads((eval_run / "manifest.json").read_text())["model_fingerprint"] == result.outputs["tiny"].fingerprint


def test_corrupted_shard_is_reported_and_recomputed_in_a_run(baseline, warm, tmp_path, shared_data):
    _, first, _ = baseline
    shard = ItemCache(tmp_path / "cache" / "solve").shards()[0]
    shard.write_bytes(shard.read_bytes().replace(b'"completion": "', b'"completion": "X', 1))
    (tmp_path / "run" / "solve" / "stage.json").unlink()
    logged = []
    second = run_recipe(parse_recipe(small_recipe(shared_data)), tmp_path / "run", cache_dir=tmp_path / "cache",
                        progress=(computed := ComputedItems()), log=logged.append)
    assert computed.counts["solve"] == 8  # the shard held one batch of 8 problems
    assert read_bytes(first, "solve") == read_bytes(second, "solve")
    assert (tmp_path / "cache" / "solve" / "corrupt" / shard.name).exists()
    assert any("checksum mismatch" in line and shard.name in line for line in logged)


def test_cache_ls_and_gc_keep_what_runs_use(warm, tmp_path, shared_data):
    before = {row["namespace"]: row for row in cache_stats(tmp_path / "cache")}
    run(small_recipe(shared_data), tmp_path, ["stages.verify.timeout=9"])  # other verify keys than the baseline
    middle = {row["namespace"]: row for row in cache_stats(tmp_path / "cache")}
    assert middle["verify"]["items"] > before["verify"]["items"] and middle["solve"] == before["solve"]
    used = json.loads((tmp_path / "run" / "cache_keys.json").read_text())
    assert len(used["solve"]) == before["solve"]["items"]  # train set + held-out set, all used again
    collect_garbage(tmp_path / "cache", [tmp_path / "run"])
    after = {row["namespace"]: row for row in cache_stats(tmp_path / "cache")}
    assert after["verify"]["items"] == len(used["verify"]) < middle["verify"]["items"]
    assert after["verify"]["shards"] == after["solve"]["shards"] == 1
    assert set(ItemCache(tmp_path / "cache" / "verify").index) == set(used["verify"])
    rerun, computed = run(small_recipe(shared_data), tmp_path, ["stages.verify.timeout=9"])
    assert computed == {}
    with pytest.raises(Exception, match="not a pipeline run directory"):
        collect_garbage(tmp_path / "cache", [tmp_path])


def test_full_disk_during_a_shard_write_stops_with_one_line_and_loses_nothing(baseline, warm, tmp_path, shared_data,
                                                                              monkeypatch):
    import errno

    import reasonloop.cache
    from reasonloop.cache import CacheWriteError

    _, first, _ = baseline
    shutil.rmtree(tmp_path / "cache" / "solve")
    (tmp_path / "run" / "solve" / "stage.json").unlink()
    real_write, writes = reasonloop.cache.atomic_write_bytes, []

    def disk_fills_up(path, data):
        writes.append(path)
        if len(writes) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(reasonloop.cache, "atomic_write_bytes", disk_fills_up)
    with pytest.raises(CacheWriteError) as info:
        run(small_recipe(shared_data), tmp_path)
    assert "No space left on device" in str(info.value) and "8 results of this batch will be recomputed" in str(info.value)
    monkeypatch.undo()
    assert len(ItemCache(tmp_path / "cache" / "solve")) == 8  # the batch written before the disk filled up
    resumed, computed = run(small_recipe(shared_data), tmp_path)
    assert computed["solve"] == 16 and read_bytes(resumed, "solve", "verify") == read_bytes(first, "solve", "verify")


class RecordingGenerator:
    """Answers every prompt alike and keeps the params it was asked with."""

    name = "recording"

    def __init__(self):
        self.asked = []

    def fingerprint(self):
        return "recording-v1"

    def generate(self, prompts, params):
        from reasonloop.models.base import Completion

        self.asked.append((list(prompts), params))
        return [[Completion(" 2*3 = <<2*3=6>>6\n#### 6", tokens=9) for _ in range(params.n)] for _ in prompts]


def test_solve_and_evaluate_ask_with_the_models_stop_strings_and_calculator(tmp_path, monkeypatch):
    from reasonloop.pipeline.executors import make_executor
    from reasonloop.pipeline.contract import RunContext, StageOutput
    from reasonloop.pipeline.engine import no_progress
    from reasonloop.pipeline.stages import EvaluateStage, SolveStage
    from reasonloop.solve import GeneratorSpec, problem_seed
    from reasonloop.prompts import PromptFormat
    from reasonloop.records import write_records

    (tmp_path / "model").mkdir()
    PromptFormat(name="calc", prompt="Q: {question}\nA:", stop=("\nQ:",), calculator=True).save(tmp_path / "model")
    model = StageOutput("model", str(tmp_path / "model"), "model-fp")
    path = write_records(tmp_path / "problems.jsonl", [Problem(question="2 times 3?", answer="6")])
    problems = StageOutput("problems", str(path), "problems-fp")
    generator = RecordingGenerator()
    monkeypatch.setattr(GeneratorSpec, "load", lambda self: generator)
    ctx = RunContext(parse_recipe({"name": "t", "stages": []}), tmp_path / "run", tmp_path / "cache",
                     make_executor("inline"), no_progress, log=lambda line: None)

    solve = SolveStage(name="solve", kind="solve", model="m", problems="p", samples=2, temperature=0.5, max_new_tokens=40)
    (tmp_path / "solve").mkdir()
    output = solve.run(ctx, {"model": model, "problems": problems}, tmp_path / "solve", 7)
    (prompts, params), = generator.asked
    assert prompts == ["Q: 2 times 3?\nA:"]
    assert (params.n, params.temperature, params.max_new_tokens) == (2, 0.5, 40)
    assert params.seed == problem_seed(7, load(path, Problem)[0].id)  # the run seed and the problem's id
    assert params.stop == ("\nQ:",) and params.calculator
    attempts = load(output.path, Attempt)
    assert len(attempts) == 2 and all(a.sampling.calculator and a.sampling.seed == 7 for a in attempts)

    evaluate = EvaluateStage(name="eval", kind="evaluate", model="m", problems=["p"], max_new_tokens=40)
    (tmp_path / "eval").mkdir()
    evaluate.run(ctx, {"model": model, "problems": [problems]}, tmp_path / "eval", 7)
    assert generator.asked[-1][1].calculator and generator.asked[-1][1].stop == ("\nQ:",)
    manifest = json.loads((tmp_path / "eval" / "eval.p" / "manifest.json").read_text())
    assert manifest["sampling"]["calculator"] is True and manifest["sampling"]["stop"] == ["\nQ:"]


def test_changed_training_setting_trains_afresh_instead_of_resuming_the_old_checkpoint(tmp_path, shared_data):
    recipe = small_recipe(shared_data)
    recipe["stages"] = recipe["stages"][:3] + [
        {"name": "sft", "kind": "sft", "model": "tiny", "problems": "train_set",
         "settings": {"max_steps": 2, "batch_size": 4, "save_steps": 1, "learning_rate": 1e-3}}]

    def trained_weights(overrides=()):
        result, _ = run(recipe, tmp_path, overrides)
        return (Path(result.outputs["sft"].path) / "model.safetensors").read_bytes()

    first = trained_weights()
    changed = trained_weights(["stages.sft.settings.learning_rate=0.01"])
    shutil.rmtree(tmp_path / "run")
    cold = trained_weights(["stages.sft.settings.learning_rate=0.01"])
    assert changed != first  # with the old checkpoint-2 resumed, no step would have run: the same weights
    assert changed == cold


def test_summary_table_shows_each_evaluations_change_against_the_one_before(shared_data, tmp_path):
    from rich.console import Console

    from reasonloop.pipeline.commands import paired_changes, print_summary
    from reasonloop.train import mcnemar
    from report_rundir import make_run

    labels = ("eval_sft", "eval_rft")
    for seed, label in enumerate(labels):
        make_run(shared_data, tmp_path / label / f"{label}.gsm8k", problems=60, samples=1, seed=seed)
    outcomes = {label: [json.loads(line)["status"] == "correct"
                        for line in (tmp_path / label / f"{label}.gsm8k" / "verdicts.jsonl").read_text().splitlines()]
                for label in labels}
    timings = {label: {"produces": "eval", "status": "computed", "seconds": 1.0,
                       "metrics": {"gsm8k": sum(outcomes[label]) / 60}, "runs": {"gsm8k": f"{label}/{label}.gsm8k"}}
               for label in labels}

    changes = paired_changes(tmp_path, timings)

    expected = mcnemar(outcomes["eval_sft"], outcomes["eval_rft"])
    change = changes["eval_rft"]["gsm8k"]
    assert list(changes) == ["eval_rft"] and change["vs"] == "eval_sft" and change["better"] + change["worse"] > 0
    assert (change["better"], change["worse"], change["p"]) == (expected.only_b, expected.only_a, expected.p_value)
    assert change["points"] == pytest.approx(100 * (sum(outcomes["eval_rft"]) - sum(outcomes["eval_sft"])) / 60)
    console = Console(record=True, width=160)
    print_summary(console, {"results": {label: timings[label]["metrics"] for label in labels}, "changes": changes,
                            "stages": timings, "seconds": 2.0, "run_dir": str(tmp_path), "report": None})
    cells = [[cell.strip() for cell in line.split("│")[1:3]] for line in console.export_text().splitlines()
             if line.count("│") == 3]
    rft_at = [label for label, _ in cells].index("eval_rft")
    assert cells[rft_at - 1] == ["eval_sft", f"{100 * timings['eval_sft']['metrics']['gsm8k']:.1f}%"]
    assert cells[rft_at][1] == f"{100 * timings['eval_rft']['metrics']['gsm8k']:.1f}%"
    assert cells[rft_at + 1][0] == "" and cells[rft_at + 1][1].startswith(f"{change['points']:+.1f}, p ")


def test_sft_on_verified_samples_can_require_grounded_steps(tmp_path):
    from reasonloop.pipeline.contract import StageOutput
    from reasonloop.pipeline.stages.training import verified_solutions
    from reasonloop.records import write_records

    problem = Problem(id="bus", question="A bus has 18 riders; 6 get off. How many are left?", answer="12")
    completions = [" 19 - 7 = <<19-7=12>>12 riders.\n#### 12", " 18 - 6 = <<18-6=12>>12 riders.\n#### 12",
                   " 18 - 6 = <<18-6=12>>13 riders.\n#### 13"]
    attempts = [Attempt(problem_id="bus", prompt="Q", completion=c, model="m", sample_index=i)
                for i, c in enumerate(completions)]
    verdicts = [Verdict(status=s, extracted=e, reference="12", reason="", verifier="v", problem_id="bus", sample_index=i)
                for i, (s, e) in enumerate([("correct", "12"), ("correct", "12"), ("incorrect", "13")])]
    paths = {name: write_records(tmp_path / f"{name}.jsonl", records)
             for name, records in (("problems", [problem]), ("attempts", attempts), ("verdicts", verdicts))}
    output = StageOutput("verdicts", str(paths["verdicts"]), "f",
                         {"problems": str(paths["problems"]), "attempts": str(paths["attempts"])})

    assert [p.solution for p in verified_solutions(output, 4)] == ["19 - 7 = <<19-7=12>>12 riders.",
                                                                   "18 - 6 = <<18-6=12>>12 riders."]
    assert [p.solution for p in verified_solutions(output, 4, check_steps=True)] == ["18 - 6 = <<18-6=12>>12 riders."]


def test_evaluation_timing_maps_each_problem_set_to_its_own_run_whatever_the_order(tmp_path):
    from reasonloop.pipeline.contract import StageOutput
    from reasonloop.pipeline.engine import evaluation_timing

    # a cached stage's summary comes back from JSON with its keys sorted, its runs in recipe order
    output = StageOutput("eval", str(tmp_path / "eval.v2"), "f", {
        "summary": {"heldout": 0.4, "heldout_large": 0.3, "heldout_renamed": 0.5},
        "runs": ["eval.v2.heldout", "eval.v2.heldout_renamed", "eval.v2.heldout_large"]})
    timing = evaluation_timing(output, tmp_path, "eval.v2")
    assert timing["runs"] == {suite: f"eval.v2/eval.v2.{suite}" for suite in ("heldout", "heldout_renamed", "heldout_large")}
    assert timing["metrics"] == output.meta["summary"]


def test_dpo_stage_trains_through_the_registered_trainer(tmp_path, shared_data, monkeypatch):
    from reasonloop.pipeline.recipe import RecipeError
    from reasonloop.train import dpo
    from reasonloop.train.sampling import Graded

    def sample(model_dir, problems, *, k, temperature, seed, **kwargs):  # stands in: one right, one wrong each
        samples = lambda p: [(f" {p.answer}\n#### {p.answer}", "correct"), (" 0.5\n#### 0.5", "incorrect")]
        return [Graded(p, Attempt(problem_id=p.id, prompt="", completion=text, sample_index=i), Verdict(status=status))
                for p in problems for i, (text, status) in enumerate(samples(p))]

    monkeypatch.setattr(dpo, "sample_and_grade", sample)
    recipe = small_recipe(shared_data)
    recipe["stages"] = recipe["stages"][:3] + [
        {"name": "prefer", "kind": "dpo", "model": "tiny", "problems": "train_set",
         "settings": {"max_steps": 2, "batch_size": 4, "save_steps": 1, "k": 2, "betta": 0.2}}]
    with pytest.raises(RecipeError, match="unknown setting 'betta' in stage prefer.settings; did you mean 'beta'"):
        run(recipe, tmp_path)
    del recipe["stages"][-1]["settings"]["betta"]
    result, _ = run(recipe, tmp_path)
    out = Path(result.outputs["prefer"].path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["kind"], manifest["pairs"], manifest["optimizer_steps"]) == ("train-dpo", 24, 2)
    assert out == tmp_path / "run" / "prefer" / "model" and (out / "model.safetensors").is_file()
    assert run(recipe, tmp_path)[0].timings["prefer"]["status"] == "cached"


def test_every_registered_trainer_is_a_training_stage_kind():
    from reasonloop.pipeline.contract import STAGE_KINDS
    from reasonloop.pipeline.stages.training import TrainStage
    from reasonloop.train.registry import trainer_names

    trainers = {kind for kind, cls in STAGE_KINDS.items() if issubclass(cls, TrainStage)}
    assert trainers == set(trainer_names()) and trainers >= {"sft", "rft", "dpo", "grpo"}


def test_evaluate_key_follows_the_content_of_a_reward_model_its_strategy_names(tmp_path):
    """A PRM retrained at the same path changes the evaluate stage's cache settings; the strategy
    text alone would not. Shipped recipes name no models, so their keys keep no such entry."""
    from reasonloop.pipeline.stages.solving import EvaluateStage

    prm = tmp_path / "prm"
    prm.mkdir()
    (prm / "model.safetensors").write_bytes(b"first weights")

    def settings(strategy: str) -> dict:
        return EvaluateStage(name="eval", kind="evaluate", model="m", problems=["p"], strategy=strategy,
                             samples=4, temperature=0.8).cache_settings()

    spec = f"best_of_n:reward_model={prm},aggregate=min"
    first = settings(spec)
    (prm / "model.safetensors").write_bytes(b"retrained weights")
    second = settings(spec)
    assert first["strategy"] == second["strategy"] and first["strategy_models"] != second["strategy_models"]
    assert set(second["strategy_models"]) == {str(prm)}
    assert "strategy_models" not in settings("majority")
    assert settings(f"mma:models={prm}+http://host:8000/v1")["strategy_models"]["http://host:8000/v1"] == "http://host:8000/v1"
