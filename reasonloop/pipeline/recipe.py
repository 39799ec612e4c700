"""Recipes: a YAML file of stages, validated into typed configs before any work starts.

    name: demo
    seed: 0
    model: runs/base-model            # the model stages call `base` (path, .gguf or http URL)
    stages:
      - {name: problems, kind: problems, source: builtin, n_per_template: 20}
      - {name: solve, kind: solve, model: base, problems: problems, samples: 4, temperature: 0.8}
      - {name: verify, kind: verify, attempts: solve}
    loop: {rounds: 2, stages: [solve, verify, train], feed: {solve.model: train}}

A stage names its inputs by the names of other stages (fields listed in its `refs`); the
references form a graph that must be acyclic. `loop` repeats some stages for R rounds,
and `feed` passes a stage's output of round r into a field of round r + 1 (the only way
to close a loop). Every message names the stage, the key and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reasonloop.pipeline.contract import BASE_MODEL, STAGE_KINDS, RecipeError, StageConfig, register_stage, unknown


class ExecutorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray", "inline"] = Field("local", description="Where per-item batches run.")
    workers: int | None = Field(None, ge=1, description="Worker processes (default: CPU count).")
    address: str | None = Field(None, description="Ray cluster address (ray only); none: a local Ray.")


class LoopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: int = Field(1, ge=1, description="How many times the loop's stages run.")
    stages: list[str] = Field(description="Stages repeated each round, run in dependency order.")
    feed: dict[str, str] = Field(
        default_factory=dict, description="'stage.field' -> stage whose previous-round output fills it."
    )


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Run name (the default run directory is runs/NAME).")
    description: str = ""
    seed: int = Field(0, description="Default seed of every stage.")
    model: str | None = Field(None, description="The model stages call `base`: a directory, a .gguf file or an http(s) URL.")
    executor: ExecutorConfig = ExecutorConfig()
    loop: LoopConfig | None = None
    stages: list[Any] = Field(description="The stages; each has a name and a kind.")

    def stage(self, name: str) -> StageConfig:
        return next(s for s in self.stages if s.name == name)


# ---------------------------------------------------------------- loading & validation


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override (`key=value`), validate and check a recipe file."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise RecipeError(f"recipe {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_recipe(raw, overrides, source=str(path))


def parse_recipe(raw: Any, overrides: list[str] | tuple[str, ...] = (), *, source: str = "recipe") -> Recipe:
    import reasonloop.pipeline.stages  # noqa: F401 - registers the stage kinds (they import only the contract)

    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: expected a mapping of keys (name, stages, ...), got {type(raw).__name__}")
    for assignment in overrides:
        apply_override(raw, assignment)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"{source}: {describe_error(exc, Recipe, 'recipe')}") from None
    recipe.stages = [validate_stage(stage, i, source) for i, stage in enumerate(recipe.stages)]
    check_recipe(recipe, source)
    return recipe


def validate_stage(raw: Any, index: int, source: str) -> StageConfig:
    where = f"stages[{index}]"
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: {where} must be a mapping with name and kind, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in STAGE_KINDS:
        raise RecipeError(f"{source}: {unknown('stage kind', kind, sorted(STAGE_KINDS), where)}")
    cls = STAGE_KINDS[kind]
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        label = f"{where} ({raw.get('name', kind)})" if isinstance(raw.get("name", kind), str) else where
        raise RecipeError(f"{source}: {describe_error(exc, cls, label)}") from None


def describe_error(exc: ValidationError, cls: type[BaseModel], where: str) -> str:
    """One line for the first error: the key, where it is, and what is allowed."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    owner = model_at(cls, loc[:-1])
    place = ".".join([where, *loc[:-1]]) if loc[:-1] else where
    if error["type"] == "extra_forbidden":
        allowed = [name for name in owner.model_fields if name != "kind"]
        return unknown("key", loc[-1], allowed, place)
    if error["type"] == "missing":
        return f"missing key {loc[-1]!r} in {place}"
    field = ".".join([where, *loc])
    if error["type"] == "literal_error":
        return f"{field}: {error['input']!r} is not allowed; allowed: {error['ctx']['expected']}"
    return f"{field}: {error['msg']} (got {error.get('input')!r})"


def model_at(cls: type[BaseModel], path: list[str]) -> type[BaseModel]:
    """The nested config class a validation error path points into."""
    for part in path:
        field = cls.model_fields.get(part)
        if field is None:
            break
        candidates = [field.annotation, *get_args(field.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            break
        cls = nested[0]
    return cls


def apply_override(raw: dict, assignment: str) -> None:
    """`a.b=value` (value parsed as YAML); `stages.NAME.key=value` addresses a stage by name."""
    path, sep, text = assignment.partition("=")
    if not sep or not path.strip():
        raise RecipeError(f"--set {assignment!r}: expected key=value, e.g. seed=3 or stages.solve.temperature=0.5")
    value = yaml.safe_load(text) if text.strip() else ""
    parts, target = path.strip().split("."), raw
    for depth, part in enumerate(parts[:-1]):
        target = step_into(target, part, parts[: depth + 1], assignment)
    if isinstance(target, list):
        target = step_into(target, parts[-1], parts, assignment)
        raise RecipeError(f"--set {assignment!r}: cannot replace a whole stage")
    target[parts[-1]] = value


def step_into(target: Any, part: str, trail: list[str], assignment: str) -> Any:
    if isinstance(target, list):
        names = [s.get("name") for s in target if isinstance(s, dict)]
        if part.isdigit() and int(part) < len(target):
            return target[int(part)]
        if part in names:
            return target[names.index(part)]
        raise RecipeError(f"--set {assignment!r}: {unknown('stage', part, [str(n) for n in names])}")
    if not isinstance(target, dict):
        raise RecipeError(f"--set {assignment!r}: {'.'.join(trail[:-1])} is not a mapping")
    return target.setdefault(part, {})


# ---------------------------------------------------------------- the stage graph


def check_recipe(recipe: Recipe, source: str = "recipe") -> None:
    names = [s.name for s in recipe.stages]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RecipeError(f"{source}: stage name {duplicates[0]!r} is used twice; stage names must be unique")
    if BASE_MODEL in names:
        raise RecipeError(f"{source}: {BASE_MODEL!r} is reserved for the recipe's model; rename that stage")
    by_name = {s.name: s for s in recipe.stages}
    for index, stage in enumerate(recipe.stages):
        for field_name, targets in stage.references().items():
            for target in targets:
                check_reference(recipe, by_name, stage, index, field_name, target, source)
    check_loop(recipe, by_name, source)
    cycle = find_cycle(dependencies(recipe))
    if cycle:
        raise RecipeError(f"{source}: the stages form a cycle: {' -> '.join(cycle)} (each reads the next); "
                          "to pass an output to the next round, use loop.feed")
    check_base_model(recipe, source)


def check_reference(recipe, by_name, stage, index, field_name, target, source) -> None:
    where = f"stages[{index}] ({stage.name}).{field_name}"
    allowed_kinds = stage.refs[field_name]
    if target == BASE_MODEL:
        if "model" not in allowed_kinds:
            raise RecipeError(f"{source}: {where}: {BASE_MODEL!r} is the recipe's model, but this field needs {' or '.join(allowed_kinds)}")
        return
    if target not in by_name:
        choices = [n for n, s in by_name.items() if s.produces in allowed_kinds and n != stage.name]
        if "model" in allowed_kinds:
            choices.append(BASE_MODEL)
        raise RecipeError(f"{source}: {unknown('stage', target, choices, where)}")
    produced = by_name[target].produces
    if produced not in allowed_kinds:
        raise RecipeError(
            f"{source}: {where}: stage {target!r} produces {produced}, but this field needs {' or '.join(allowed_kinds)}"
        )


def check_loop(recipe: Recipe, by_name: dict[str, StageConfig], source: str) -> None:
    loop = recipe.loop
    if loop is None:
        return
    for name in loop.stages:
        if name not in by_name:
            raise RecipeError(f"{source}: {unknown('stage', name, list(by_name), 'loop.stages')}")
    for target_field, producer in loop.feed.items():
        stage_name, _, field_name = target_field.partition(".")
        if stage_name not in loop.stages:
            raise RecipeError(f"{source}: loop.feed {target_field!r}: stage {stage_name!r} is not in loop.stages {loop.stages}")
        stage = by_name[stage_name]
        if field_name not in stage.refs:
            raise RecipeError(f"{source}: {unknown('input field', field_name, list(stage.refs), f'loop.feed {target_field!r}')}")
        if producer not in loop.stages:
            raise RecipeError(f"{source}: loop.feed {target_field!r}: {producer!r} is not in loop.stages {loop.stages}")
        if by_name[producer].produces not in stage.refs[field_name]:
            raise RecipeError(f"{source}: loop.feed {target_field!r}: {producer!r} produces {by_name[producer].produces}, "
                              f"the field needs {' or '.join(stage.refs[field_name])}")
    inside = set(loop.stages)
    deps = dependencies(recipe)
    for name in by_name:
        if name not in inside and ancestors(name, deps) & inside and descendants(name, deps) & inside:
            raise RecipeError(f"{source}: stage {name!r} depends on the loop and the loop depends on it; add it to loop.stages")


def dependencies(recipe: Recipe) -> dict[str, set[str]]:
    """stage -> the stages it reads (not counting loop.feed, which crosses rounds)."""
    return {
        s.name: {t for targets in s.references().values() for t in targets if t != BASE_MODEL}
        for s in recipe.stages
    }


def ancestors(name: str, deps: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(deps.get(name, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(deps.get(current, ()))
    return seen


def descendants(name: str, deps: dict[str, set[str]]) -> set[str]:
    return {other for other in deps if name in ancestors(other, deps)}


def find_cycle(deps: dict[str, set[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a] (a reads b ...), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(deps.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [node, dep] if dep in path else [node, dep]
            if dep not in state:
                found = visit(dep, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in deps:
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def execution_order(recipe: Recipe) -> list[str]:
    """Stages in dependency order (stable: recipe order among independent stages)."""
    deps, order, done = dependencies(recipe), [], set()
    pending = [s.name for s in recipe.stages]
    while pending:
        ready = next(n for n in pending if deps[n] <= done)
        order.append(ready)
        done.add(ready)
        pending.remove(ready)
    return order


def check_base_model(recipe: Recipe, source: str) -> None:
    users = [s.name for s in recipe.stages if any(BASE_MODEL in t for t in s.references().values())]
    if not users:
        return
    if not recipe.model:
        raise RecipeError(
            f"{source}: stage {users[0]!r} uses model {BASE_MODEL!r}, but the recipe sets no model; "
            "set model: to a model directory, a .gguf file or an http(s):// server URL, or build one with a tiny_model stage"
        )
    problem = model_problem(recipe.model)
    if problem:
        raise RecipeError(f"{source}: model {recipe.model!r} (used by stage {users[0]!r}): {problem}")


def model_problem(model: str) -> str | None:
    """Why `model` cannot be loaded offline, or None."""
    if model.startswith(("http://", "https://", "vllm:")):
        return None
    path = Path(model).expanduser()
    if path.exists():
        return None
    if model.count("/") == 1 and hub_cached(model):
        return None
    return ("no such file or directory, nor a model in the local Hugging Face cache "
            "(give a model directory, a .gguf file or an http(s):// URL; downloads are off)")


def hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid id or no hub library: not cached
        return False


__all__ = [
    "BASE_MODEL",
    "ExecutorConfig",
    "LoopConfig",
    "Recipe",
    "RecipeError",
    "STAGE_KINDS",
    "StageConfig",
    "execution_order",
    "load_recipe",
    "parse_recipe",
    "register_stage",
]
