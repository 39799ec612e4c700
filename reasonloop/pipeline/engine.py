"""The pipeline engine: runs a recipe's stages in dependency order, loops for R rounds, every result cached.

A stage whose key (its settings, its inputs' fingerprints, its code version and seed) is
unchanged since the last run in the same run directory is not run again. Per-item stages
(solve, verify, evaluate) also cache each item in the shared content-addressed cache, so a
changed setting recomputes only the items it changes and a killed run resumes.

    from reasonloop.pipeline.recipe import load_recipe
    from reasonloop.pipeline.engine import run_recipe
    result = run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from reasonloop.atomic import atomic_write_json
from reasonloop.cache import item_key
from reasonloop.pipeline.contract import BASE_MODEL, RunContext, StageConfig, StageOutput, fingerprint_path
from reasonloop.pipeline.recipe import Recipe, dependencies, execution_order

STAGE_FILE = "stage.json"
PENDING_FILE = "stage.pending.json"  # the key a started, unfinished stage run is computing
CACHE_KEYS = "cache_keys.json"  # the cache entries a run used, so `reasonloop cache gc --keep RUN` keeps them
MANIFEST_FORMAT = 1
PIPELINE_PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "math-verify", "sympy",
                     "pydantic", "ray", "reasoning-gym")


def default_cache_dir() -> Path:
    return Path(os.environ.get("REASONLOOP_CACHE", Path.home() / ".cache" / "reasonloop"))


@dataclass
class RunResult:
    run_dir: Path
    outputs: dict[str, StageOutput]
    rounds: dict[str, list[StageOutput]]  # loop stages: one output per round
    timings: dict[str, dict[str, Any]]


def base_model_output(recipe: Recipe) -> StageOutput | None:
    if not recipe.model:
        return None
    model = recipe.model
    if model.startswith(("http://", "https://", "vllm:")) or not Path(model).exists():
        return StageOutput("model", model, item_key("model-name", model)[:32], {"remote": True})
    return StageOutput("model", str(Path(model).resolve()), fingerprint_path(model))


def stage_seed(recipe: Recipe, stage: StageConfig, round_index: int) -> int:
    seed = recipe.seed if stage.seed is None else stage.seed
    return seed + max(round_index - 1, 0) * 1000


def stage_dir(run_dir: Path, name: str, round_index: int) -> Path:
    return run_dir / name / f"round-{round_index}" if round_index else run_dir / name


def run_recipe(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    executor: Any = None,
    progress: Callable[[str, int, int], Callable[[int], None]] | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Run every stage of `recipe` into `run_dir`, reusing whatever is already done."""
    from reasonloop.pipeline import stages as _stages  # noqa: F401 - registers the stage kinds
    from reasonloop.pipeline.executors import make_executor

    for stage in recipe.stages:
        stage.preflight()
    run_dir = Path(run_dir).resolve()
    own_executor = executor is None
    if own_executor:
        cfg = recipe.executor
        executor = make_executor(cfg.kind, workers=cfg.workers, address=cfg.address)
    ctx = RunContext(recipe, run_dir, Path(cache_dir or default_cache_dir()), executor, progress or no_progress, log)
    manifest = pipeline_manifest(recipe, executor)
    atomic_write_json(run_dir / "manifest.json", manifest)
    outputs: dict[str, StageOutput] = {}
    base = base_model_output(recipe)
    if base:
        outputs[BASE_MODEL] = base
    rounds: dict[str, list[StageOutput]] = {}
    timings: dict[str, dict[str, Any]] = {}
    try:
        for step in plan(recipe):
            if isinstance(step, list):
                run_loop(ctx, step, outputs, rounds, timings)
            else:
                run_stage(ctx, recipe.stage(step), outputs, 0, timings)
    finally:
        if own_executor:
            executor.close()
        atomic_write_json(run_dir / CACHE_KEYS, {ns: sorted(keys) for ns, keys in ctx.used_keys.items()})
    manifest.update(finished_manifest(ctx, outputs, timings))
    atomic_write_json(run_dir / "manifest.json", manifest)
    return RunResult(run_dir, outputs, rounds, timings)


def plan(recipe: Recipe) -> list[str | list[str]]:
    """Execution order with the loop's stages as one step (a list, in dependency order).

    The loop is one node of the graph: it runs after every stage any of its members reads,
    and before every stage that reads any of them.
    """
    order = execution_order(recipe)
    inside = [n for n in order if recipe.loop and n in recipe.loop.stages]
    node = {n: ("loop" if n in inside else n) for n in order}
    deps = {node[s]: set() for s in order}
    for name, needs in dependencies(recipe).items():
        deps[node[name]] |= {node[d] for d in needs} - {node[name]}
    steps, done = [], set()
    pending = list(dict.fromkeys(node[s] for s in order))
    while pending:
        ready = next(n for n in pending if deps[n] <= done)
        steps.append(inside if ready == "loop" else ready)
        done.add(ready)
        pending.remove(ready)
    return steps


def run_loop(ctx: RunContext, names: list[str], outputs, rounds, timings) -> None:
    loop = ctx.recipe.loop
    for round_index in range(1, loop.rounds + 1):
        ctx.log(f"round {round_index}/{loop.rounds}")
        fed: dict[str, dict[str, StageOutput]] = {}
        if round_index > 1:
            for target, producer in loop.feed.items():
                stage_name, _, field_name = target.partition(".")
                fed.setdefault(stage_name, {})[field_name] = outputs[producer]
        for name in names:
            output = run_stage(ctx, ctx.recipe.stage(name), outputs, round_index, timings, fed.get(name, {}))
            rounds.setdefault(name, []).append(output)


def stage_inputs(stage: StageConfig, outputs: dict[str, StageOutput], fed: dict[str, StageOutput]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for field_name, targets in stage.references().items():
        if field_name in fed:
            inputs[field_name] = fed[field_name]
            continue
        found = [outputs[t] for t in targets]
        inputs[field_name] = found if isinstance(getattr(stage, field_name), list) else found[0]
    return inputs


def stage_key(stage: StageConfig, inputs: dict[str, Any], seed: int) -> str:
    fingerprints = {k: [o.fingerprint for o in v] if isinstance(v, list) else v.fingerprint for k, v in inputs.items()}
    return item_key(stage.kind, stage.version, stage.cache_settings(), fingerprints, seed)


def run_stage(ctx: RunContext, stage: StageConfig, outputs, round_index: int, timings, fed=None) -> StageOutput:
    ctx.round = round_index
    inputs = stage_inputs(stage, outputs, fed or {})
    seed = stage_seed(ctx.recipe, stage, round_index)
    key = stage_key(stage, inputs, seed)
    out_dir = stage_dir(ctx.run_dir, stage.name, round_index)
    label = f"{stage.name}" + (f" (round {round_index})" if round_index else "")
    start = time.perf_counter()
    output, cache_keys = cached_stage_output(out_dir, key, ctx.run_dir)
    status = "cached" if output else "computed"
    if output is None:
        ctx.log(f"stage {label} ({stage.kind}) ...")
        done = ctx.progress(f"stage {label}", 1, 0)
        ctx.stage_keys = {}
        claim_stage_dir(out_dir, key)
        output = stage.run(ctx, inputs, out_dir, seed)
        done(1)
        atomic_write_json(out_dir / STAGE_FILE, {"key": key, "kind": stage.kind, "seed": seed,
                                                 "output": output.to_json(ctx.run_dir),
                                                 "cache_keys": {ns: sorted(k) for ns, k in ctx.stage_keys.items()}})
        (out_dir / PENDING_FILE).unlink(missing_ok=True)
    else:
        ctx.use_keys(cache_keys)
        ctx.log(f"stage {label}: done earlier (same inputs and settings)")
    outputs[stage.name] = output
    seconds = time.perf_counter() - start
    timings[label] = {"kind": stage.kind, "produces": output.kind, "status": status, "seconds": round(seconds, 3),
                      "seed": seed, "key": key, **evaluation_timing(output, ctx.run_dir, stage.name)}
    if status == "computed":
        summary = f": {output.meta['summary']}" if "summary" in output.meta else ""
        ctx.log(f"stage {label} done in {seconds:.1f} s{summary}")
    return output


def evaluation_timing(output: StageOutput, run_dir: Path, stage_name: str) -> dict[str, Any]:
    """An evaluation's accuracy per problem set and its run directories (relative to the run's;
    an evaluate stage names each `STAGE.PROBLEMS`)."""
    if "summary" not in output.meta:
        return {}
    timing = {"metrics": output.meta["summary"]}
    if output.meta.get("runs"):
        base = Path(output.path).resolve().relative_to(Path(run_dir).resolve())
        timing["runs"] = {run[len(stage_name) + 1:]: str(base / run) for run in output.meta["runs"]}
    return timing


def claim_stage_dir(out_dir: Path, key: str) -> None:
    """Make `out_dir` hold the work of `key` only. Work left by another key (a changed setting or
    input) is cleared — a trainer would otherwise resume from its checkpoints, an RFT run reuse its
    rounds; unfinished work of the same key (a killed run) is kept to resume from."""
    recorded = [recorded_key(path) for path in (out_dir / PENDING_FILE, out_dir / STAGE_FILE) if path.is_file()]
    if recorded and recorded[0] != key:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / PENDING_FILE, {"key": key})


def recorded_key(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None  # unreadable: treated as another key's work


def cached_stage_output(out_dir: Path, key: str, run_dir: Path) -> tuple[StageOutput | None, dict]:
    """The output recorded by an earlier run of this stage with the same key, and its cache keys."""
    path = out_dir / STAGE_FILE
    if not path.is_file():
        return None, {}
    try:
        data = json.loads(path.read_text())
        output = StageOutput.from_json(data["output"], run_dir)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None, {}
    if data.get("key") != key or not Path(output.path).exists():
        return None, {}
    return output, data.get("cache_keys", {})


def no_progress(label: str, total: int, done: int = 0) -> Callable[[int], None]:
    return lambda n: None


# ---------------------------------------------------------------- manifest


def verifier_version() -> str | None:
    try:
        from reasonloop.verify import VERIFIER_VERSION
    except ImportError:
        return None
    return VERIFIER_VERSION


def pipeline_manifest(recipe: Recipe, executor: Any) -> dict[str, Any]:
    from reasonloop.rundir import make_manifest, package_versions

    manifest = make_manifest(
        kind="pipeline",
        model=recipe.model,
        verifier_version=verifier_version(),
        seed=recipe.seed,
        config=recipe.model_dump(mode="json"),
        recipe=recipe.name,
        executor={"kind": getattr(executor, "name", type(executor).__name__), "workers": getattr(executor, "workers", None)},
    )
    manifest["packages"] = package_versions(PIPELINE_PACKAGES)
    manifest["complete"] = False
    return manifest


def finished_manifest(ctx: RunContext, outputs: dict[str, StageOutput], timings) -> dict[str, Any]:
    models = {name: o.fingerprint for name, o in outputs.items() if o.kind == "model"}
    return {
        "complete": True,
        "model_fingerprint": models.get(BASE_MODEL),
        "model_fingerprints": models,
        "seeds": {label: t["seed"] for label, t in timings.items()},
        "stages": timings,
        "cache_corrupted": ctx.corrupted,
    }


__all__ = ["RunResult", "default_cache_dir", "run_recipe"]
