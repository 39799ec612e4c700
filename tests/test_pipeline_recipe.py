"""Recipe validation: every bad recipe gets one line naming the stage, key and allowed values."""

from pathlib import Path

import pytest

from reasonloop.pipeline.recipe import RecipeError, load_recipe, parse_recipe
from reasonloop.pipeline.engine import plan
from reasonloop.pipeline.contract import settings_object

ROOT = Path(__file__).resolve().parents[1]


def loop_recipe(**changes):
    recipe = {
        "name": "demo",
        "model": str(ROOT),  # any existing directory passes the offline model check
        "stages": [
            {"name": "problems", "kind": "problems", "source": "builtin", "n_per_template": 2},
            {"name": "heldout", "kind": "problems", "seed": 1, "exclude": ["problems"]},
            {"name": "solve", "kind": "solve", "model": "base", "problems": "problems", "samples": 4, "temperature": 0.8},
            {"name": "verify", "kind": "verify", "attempts": "solve"},
            {"name": "train", "kind": "sft", "model": "base", "verified": "verify"},
            {"name": "eval", "kind": "evaluate", "model": "train", "problems": ["heldout"]},
        ],
        "loop": {"rounds": 2, "stages": ["solve", "verify", "train"], "feed": {"solve.model": "train", "train.model": "train"}},
    }
    recipe.update(changes)
    return recipe


def error_of(raw, overrides=()):
    with pytest.raises(RecipeError) as info:
        parse_recipe(raw, list(overrides))
    return str(info.value)


def test_valid_recipe_plans_the_loop_between_its_inputs_and_its_readers():
    recipe = parse_recipe(loop_recipe())
    assert plan(recipe) == ["problems", "heldout", ["solve", "verify", "train"], "eval"]
    assert recipe.stage("solve").temperature == 0.8 and recipe.stage("verify").timeout == 5.0


def test_typo_in_a_stage_key_names_the_key_the_stage_and_the_allowed_keys():
    raw = loop_recipe()
    raw["stages"][2]["temprature"] = raw["stages"][2].pop("temperature")
    message = error_of(raw)
    assert "unknown key 'temprature' in stages[2] (solve); did you mean 'temperature'? allowed: " in message
    assert "max_new_tokens" in message and "\n" not in message


def test_typo_in_a_top_level_key_and_in_a_nested_block():
    assert "unknown key 'rounds' in recipe; allowed: name, description, seed, model, executor, loop, stages" in error_of(
        loop_recipe(rounds=2))
    assert "unknown key 'adress' in recipe.executor; did you mean 'address'?" in error_of(
        loop_recipe(executor={"kind": "ray", "adress": "x"}))


def test_bad_values_list_the_allowed_ones():
    assert "recipe.executor.kind: 'slurm' is not allowed; allowed: 'local', 'ray' or 'inline'" in error_of(
        loop_recipe(executor={"kind": "slurm"}))
    raw = loop_recipe()
    raw["stages"][0]["kind"] = "problem"
    assert "unknown stage kind 'problem' in stages[0]; did you mean 'problems'? allowed: " in error_of(raw)
    raw = loop_recipe()
    raw["stages"][2]["samples"] = 0
    assert "stages[2] (solve).samples: Input should be greater than or equal to 1 (got 0)" in error_of(raw)


def test_references_must_name_a_stage_of_the_right_kind():
    raw = loop_recipe()
    raw["stages"][5]["model"] = "trian"
    assert "unknown stage 'trian' in stages[5] (eval).model; did you mean 'train'? allowed: train, base" in error_of(raw)
    raw = loop_recipe()
    raw["stages"][2]["problems"] = "verify"
    assert "stages[2] (solve).problems: stage 'verify' produces verdicts, but this field needs problems" in error_of(raw)


def test_a_reward_model_stage_cannot_feed_a_sampling_stage():
    raw = loop_recipe()
    raw["stages"].append({"name": "prm", "kind": "prm", "model": "base", "problems": "problems",
                          "settings": {"kind": "orm", "solutions": 2}})
    assert parse_recipe(raw).stage("prm").settings == {"kind": "orm", "solutions": 2}
    raw["stages"][5]["model"] = "prm"
    assert "stages[5] (eval).model: stage 'prm' produces reward_model, but this field needs model" in error_of(raw)


def test_a_cycle_is_named_stage_by_stage():
    raw = loop_recipe(loop=None)
    raw["stages"][2]["model"] = "train"
    message = error_of(raw)
    print(message)
    assert "the stages form a cycle: solve -> train -> verify -> solve (each reads the next)" in message
    assert "use loop.feed" in message


def test_self_reference_is_a_cycle():
    raw = loop_recipe(loop=None)
    raw["stages"][1]["exclude"] = ["heldout"]
    assert "the stages form a cycle: heldout -> heldout" in error_of(raw)


def test_missing_model_is_refused_before_any_work():
    assert "stage 'solve' uses model 'base', but the recipe sets no model" in error_of(loop_recipe(model=None))
    message = error_of(loop_recipe(model="runs/does-not-exist"))
    assert "model 'runs/does-not-exist' (used by stage 'solve'): no such file or directory" in message
    assert "nor a model in the local Hugging Face cache" in error_of(loop_recipe(model="nobody/no-such-model"))


def test_loop_feed_is_checked():
    raw = loop_recipe()
    raw["loop"]["feed"] = {"solve.modle": "train"}
    assert "unknown input field 'modle' in loop.feed 'solve.modle'; did you mean 'model'?" in error_of(raw)
    raw["loop"] = {"rounds": 2, "stages": ["solve", "verify"], "feed": {"solve.model": "train"}}
    assert "'train' is not in loop.stages" in error_of(raw)


def test_overrides_set_top_level_and_stage_keys_and_are_validated():
    recipe = parse_recipe(loop_recipe(), ["seed=7", "stages.solve.temperature=0.3", "loop.rounds=3", "stages.0.n_per_template=5"])
    assert recipe.seed == 7 and recipe.stage("solve").temperature == 0.3 and recipe.loop.rounds == 3
    assert recipe.stage("problems").n_per_template == 5
    assert "unknown stage 'slove'; did you mean 'solve'?" in error_of(loop_recipe(), ["stages.slove.temperature=1"])
    assert "unknown key 'temprature' in stages[2] (solve)" in error_of(loop_recipe(), ["stages.solve.temprature=1"])
    assert "expected key=value" in error_of(loop_recipe(), ["seed"])


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages:\n  - {name: a, kind: problems\n")
    with pytest.raises(RecipeError, match=r"bad.yaml, line \d+: not valid YAML"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe(tmp_path / "missing.yaml")


def test_trainer_settings_typos_are_named():
    from reasonloop.models.tiny import TinyConfig

    assert settings_object(TinyConfig, {"hidden_size": 64}, "tiny.config").hidden_size == 64
    with pytest.raises(RecipeError, match="unknown setting 'num_layer' in stage tiny.config; did you mean 'num_layers'"):
        settings_object(TinyConfig, {"num_layer": 2}, "tiny.config")


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    import yaml

    needs_model = bool(yaml.safe_load(path.read_text()).get("model"))
    recipe = load_recipe(path, [f"model={ROOT}"] if needs_model else [])  # any existing dir stands for the model
    assert recipe.stages and plan(recipe)


def test_cli_prints_one_line_and_exits_1_on_a_bad_recipe(tmp_path):
    import subprocess
    import sys

    import yaml

    raw = loop_recipe()
    raw["stages"][2]["temprature"] = raw["stages"][2].pop("temperature")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "reasonloop.cli", "run", str(path), "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: unknown key 'temprature' in stages[2] (solve); did you mean 'temperature'? allowed: "
        "name, seed, samples, temperature, top_p, max_new_tokens, batch_size, backend, limit, model, problems"]
    assert not (tmp_path / "run").exists()  # refused before any work


def test_run_limit_caps_every_problem_set(tmp_path, shared_data):
    import yaml
    from typer.testing import CliRunner

    from reasonloop.cli import app

    gsm8k = str(shared_data / "gsm8k" / "test.jsonl")
    recipe = {"name": "few", "executor": {"kind": "inline"}, "stages": [
        {"name": "a", "kind": "problems", "source": gsm8k, "preset": "gsm8k"},
        {"name": "b", "kind": "problems", "source": gsm8k, "preset": "gsm8k", "limit": 3}]}
    path = tmp_path / "few.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "run"),
                                      "--cache-dir", str(tmp_path / "cache"), "--limit", "5", "--json"])
    assert result.exit_code == 0, result.output
    counts = {name: len((tmp_path / "run" / name / "problems.jsonl").read_text().splitlines()) for name in "ab"}
    assert counts == {"a": 5, "b": 3}


def test_the_loop_runs_after_everything_it_reads_even_when_listed_first():
    raw = loop_recipe()
    raw["stages"].insert(0, raw["stages"].pop(2))  # solve first in the file
    raw["stages"].append({"name": "late", "kind": "problems", "source": "builtin"})
    raw["stages"][4]["problems"] = "late"  # train (in the loop) reads a stage listed last
    raw["stages"][4].pop("verified")
    assert plan(parse_recipe(raw)) == ["problems", "heldout", "late", ["solve", "verify", "train"], "eval"]
