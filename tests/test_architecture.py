"""docs/architecture.md's import rules, checked on the code: what may import what."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "featteam"

#: The layers of docs/architecture.md: a module imports only modules of its own layer or below.
LAYERS: dict[str, int] = {
    "errors": 0, "settings": 0, "expr": 0, "versions": 0,
    "data": 1, "records": 1, "engine": 1, "forest": 1,
    "evaluation": 2, "transformer": 2, "config": 2, "explore": 2, "screen": 2,
    "candidates": 3, "decoding": 3, "llm": 3, "plots": 3,
    "report": 4, "teacher": 4,
    "models": 5,
    "steps": 6,
    "selection": 7, "pipeline": 7,
    "estimator": 8, "cli": 8, "demo": 8, "bench": 8, "__init__": 8, "__main__": 8,
}
#: Imported at module level only by the modules that need them (deploying needs none of them).
HEAVY = {"torch", "transformers", "peft", "openai", "matplotlib", "safetensors", "lightgbm", "gguf", "distributed",
         "dask"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts


def _imports(path: Path, parts: tuple[str, ...]):
    """(module-level?, imported featteam module parts or external top name) of every import."""
    tree = ast.parse(path.read_text())
    package = ("featteam",) + parts[:-1]
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield id(node) in top_level, tuple(alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + tuple((node.module or "").split(".")) if node.module else base
                names = [target + (a.name,) for a in node.names] if not node.module else [target]
            else:
                names = [tuple((node.module or "").split("."))]
            for name in names:
                yield id(node) in top_level, tuple(p for p in name if p)


def _layer(parts: tuple[str, ...]) -> int:
    return LAYERS[parts[0]]


@pytest.mark.parametrize("path,parts", list(_modules()), ids=lambda v: "/".join(v) if isinstance(v, tuple) else "")
def test_imports_follow_the_layers(path, parts):
    mine = _layer(parts)
    for module_level, name in _imports(path, parts):
        if name[0] == "featteam":
            target = name[1:] or ("__init__",)
            if target[0] not in LAYERS:  # a name imported from the package root
                target = ("__init__",)
            assert _layer(target) <= mine, f"{'/'.join(parts)} imports {'.'.join(name)} from a higher layer"
            if parts[0] == "steps" and target[0] == "steps" and len(target) > 1:
                assert target[1] in ("base",) or parts[1] == "__init__", \
                    f"step module {parts[1]} imports step module {target[1]}"
            if parts[0] == "expr":
                assert target[0] in ("expr", "errors"), f"the expression core imports {'.'.join(name)}"
        elif module_level and name[0] in HEAVY:
            assert parts[0] == "models", f"{'/'.join(parts)} imports {name[0]} at module level"


def test_every_module_has_a_layer():
    assert {parts[0] for _, parts in _modules()} <= set(LAYERS)


def test_the_rules_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nfrom ..pipeline import Run\n")
    found = list(_imports(bad, ("expr", "bad")))
    assert (True, ("torch",)) in found and (True, ("featteam", "pipeline", "Run")[:2]) in found
