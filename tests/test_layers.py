"""The import map (docs: DESIGN.md, 'Dependencies point one way'): every import of a reasonloop
module, at module level or inside a function, goes down a layer or sideways within one, and no
modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reasonloop"

# Lowest first. A module belongs to the layer of the longest prefix of its name listed here.
LAYERS: list[tuple[str, ...]] = [
    ("reasonloop", "reasonloop.errors", "reasonloop.text", "reasonloop.atomic", "reasonloop.records",
     "reasonloop.stats", "reasonloop.rundir"),
    ("reasonloop.prompts", "reasonloop.cache"),
    ("reasonloop.models", "reasonloop.verify", "reasonloop.sources"),
    ("reasonloop.solve", "reasonloop.search"),
    # Model-based question synthesis samples, grades and fine-tunes through solve and train: it sits with train.
    ("reasonloop.train", "reasonloop.evaluate", "reasonloop.sources.synth"),
    ("reasonloop.report",),
    ("reasonloop.pipeline",),
    ("reasonloop.cli",),
]
CLI_LAYER = len(LAYERS) - 1
LAYER_OF_PREFIX = {prefix: index for index, prefixes in enumerate(LAYERS) for prefix in prefixes}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of `module`; every package's `commands` module is part of the command line."""
    if module.rsplit(".", 1)[-1] == "commands":
        return CLI_LAYER
    if module == "reasonloop":
        return 0
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYER_OF_PREFIX:
            return LAYER_OF_PREFIX[prefix]
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS in tests/test_layers.py")


def typing_only(tree: ast.AST) -> set[int]:
    """Line numbers of the imports under `if TYPE_CHECKING:` (never run)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {inner.lineno for body in node.body for inner in ast.walk(body)
                      if isinstance(inner, (ast.Import, ast.ImportFrom))}
    return lines


def imports_of(module: str, path: Path, known: set[str], *, with_typing: bool = True) -> list[tuple[str, int]]:
    """(imported reasonloop module, line) for every import in the file, functions included
    (those under `if TYPE_CHECKING:` only `with_typing`). `from pkg import name` counts as
    importing `pkg.name` where that is a module, else `pkg`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = set() if with_typing else typing_only(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.append((f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, node.lineno))
    return [(name, line) for name, line in found if name == "reasonloop" or name.startswith("reasonloop.")]


def import_graph(*, with_typing: bool = True) -> dict[str, list[tuple[str, int]]]:
    modules = all_modules()
    return {name: imports_of(name, path, set(modules), with_typing=with_typing) for name, path in modules.items()}


def upward_imports(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    problems = []
    for module, imported in graph.items():
        for target, line in imported:
            if layer(target) > layer(module):
                problems.append(f"{module} (line {line}) imports {target}: layer {layer(module)} -> {layer(target)}, upward")
    return problems


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a module importing itself)."""
    edges = {m: sorted({t for t, _ in imported if t in graph}) for m, imported in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return [cycle_within(set(component), edges) for component in components]


def cycle_within(component: set[str], edges: dict[str, list[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    return paths[node] + [start]
                if target in component and target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_no_upward_import():
    problems = upward_imports(import_graph())
    assert not problems, "imports against the layer map:\n" + "\n".join(problems)


def test_no_import_cycle():
    cycles = find_cycles(import_graph(with_typing=False))  # a type-only import runs never, so closes no cycle
    assert not cycles, "modules that import each other:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_has_a_layer():
    for module in all_modules():
        layer(module)


# ---------------------------------------------------------------- the checker itself


def write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for name, text in files.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[name] = path
    return paths


def test_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    paths = write_package(tmp_path, {
        "reasonloop.verify.__init__": "",
        "reasonloop.verify.grade": "def f():\n    from reasonloop.train import sft\n",
        "reasonloop.verify.extract": "from . import grade\nfrom .grade import f\nimport reasonloop.records\n"
                                     "if TYPE_CHECKING:\n    from reasonloop.train.sft import x\n",
    })
    known = {"reasonloop.verify", "reasonloop.verify.grade", "reasonloop.verify.extract", "reasonloop.train.sft"}
    assert imports_of("reasonloop.verify.grade", paths["reasonloop.verify.grade"], known) == [("reasonloop.train.sft", 2)]
    assert imports_of("reasonloop.verify.extract", paths["reasonloop.verify.extract"], known) == [
        ("reasonloop.verify.grade", 1), ("reasonloop.verify.grade", 2), ("reasonloop.records", 3),
        ("reasonloop.train.sft", 5)]
    assert imports_of("reasonloop.verify.extract", paths["reasonloop.verify.extract"], known, with_typing=False) == [
        ("reasonloop.verify.grade", 1), ("reasonloop.verify.grade", 2), ("reasonloop.records", 3)]


def test_checker_names_an_upward_import_and_a_cycle():
    graph = {
        "reasonloop.verify.grade": [("reasonloop.train.sft", 7)],
        "reasonloop.train.sft": [("reasonloop.verify.grade", 3)],
        "reasonloop.evaluate.metrics": [("reasonloop.records", 1)],
        "reasonloop.records": [],
    }
    assert upward_imports(graph) == [
        "reasonloop.verify.grade (line 7) imports reasonloop.train.sft: layer 2 -> 4, upward"]
    assert find_cycles(graph) == [["reasonloop.train.sft", "reasonloop.verify.grade", "reasonloop.train.sft"]]
    assert layer("reasonloop.train.commands") == CLI_LAYER
    assert (layer("reasonloop.sources.templates.builtin"), layer("reasonloop.sources.synth.qft")) == (2, 4)
    with pytest.raises(AssertionError, match="reasonloop.nowhere is in no layer"):
        layer("reasonloop.nowhere")
