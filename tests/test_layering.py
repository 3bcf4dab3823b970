"""The layers import downward only, and no module imports itself back (lazy imports included).

Every import statement of the package is read from the source (function-level ones too), so
a lazy import that breaks the layering fails here as surely as a top-level one.

| layer                  | may import                                   |
|------------------------|----------------------------------------------|
| runtime (chain_sdk.*)  | the runtime                                  |
| chain_sdk.nn           | the runtime, nn                              |
| chain_sdk.train        | the runtime, nn, train                       |
| chain_sdk.export       | the runtime, nn, export                      |

One exception, named here: the runtime's torch backend (`chain_sdk.backends.torch`) is
torch-using code and rebuilds the graphs from the model family in `chain_sdk.nn`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"chain_sdk": ROOT / "chain_sdk", "chain_sdk.train": ROOT / "train",
           "chain_sdk.export": ROOT / "export"}
ALLOWED = {"runtime": {"runtime"}, "nn": {"runtime", "nn"}, "train": {"runtime", "nn", "train"},
           "export": {"runtime", "nn", "export"}}
EXCEPTIONS = {
    ("chain_sdk.backends.torch", "nn"),
}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = module_files()


def layer(module: str) -> str:
    for name in ("train", "export", "nn"):
        if module == f"chain_sdk.{name}" or module.startswith(f"chain_sdk.{name}."):
            return name
    return "runtime"


def resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + is_package]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The chain_sdk modules `module` imports (a `from pkg import name` of a submodule counts as
    that submodule)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t == "chain_sdk" or t.startswith("chain_sdk.")}
    return {t if t in MODULES else _owner(t) for t in found} - {module}


def _owner(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


GRAPH = {m: imports_of(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward_only(module: str) -> None:
    here = layer(module)
    wrong = sorted(t for t in GRAPH[module]
                   if layer(t) not in ALLOWED[here] and (module, layer(t)) not in EXCEPTIONS)
    assert not wrong, f"{module} ({here} layer) imports {wrong}"


def test_no_import_cycles() -> None:
    """Tarjan-free check: depth-first search for a back edge, reporting the cycle it closes."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_check_sees_lazy_and_relative_imports() -> None:
    """The reader must see what it claims to see, or the two tests above cannot fail."""
    assert "chain_sdk.backends.torch" in GRAPH["chain_sdk.backends"]  # lazy, inside a function
    assert "chain_sdk.train.augment" in GRAPH["chain_sdk.train.data.windows"]  # relative, two dots
    assert layer("chain_sdk.nn.graphs") == "nn" and layer("chain_sdk.train.cli") == "train"
