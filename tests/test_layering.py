"""The package's layering, declared once as data: imports go down the layers, never up, never in a circle.

Every ``import`` of every module counts — top-level, function-local and ``TYPE_CHECKING`` alike — so a
lazy import cannot hide a cycle. A new room (a subpackage or a top-level module of ``llmfoundry_lite``)
is added to ``LAYERS`` before it is imported by anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "llmfoundry_lite"

LAYERS: list[str] = [
    "validate",  # checks shared by config dataclasses (stdlib only)
    "config",  # YAML + overrides onto typed dataclasses
    "spark_session",  # the one way a Spark session is made
    "corpus",  # Stack-format readers, input identities, URIs, benchmark problem files
    "filtering",  # licenses, heuristics, autogen, parse, PII, decontamination, dedup, X-ray
    "tokenizer",
    "shards",
    "objectives",  # next-token, FIM, UL2
    "models",  # the decoder, its checkpoints and HF export; knows nothing of LoRA or training
    "sandbox",  # the one place model-written code runs
    "eval",  # pass@k, languages, infilling, voting, the in-training HumanEval callback
    "callbacks",
    "training",  # the trainer and the parallel plan
    "finetune",  # instruction data, chat template, LoRA, the loader of any trained model
    "synth",  # instruction data from code, verified in the sandbox
    "serve",
    "cli",  # one main(argv) per command
    "__main__",  # python -m llmfoundry_lite <command>
]
"""Rooms from the bottom up: a module may import its own room and the rooms listed before it."""

FRONT_DOORS = {"sandbox": "llmfoundry_lite.sandbox"}
"""Rooms that others may enter only through their package (``from llmfoundry_lite.sandbox import Sandbox``)."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    where: str
    """``path:line`` of the import statement."""


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    """The package's modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if node.level:  # relative: resolved against the importing module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    if name not in known:
        return []
    subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in known]
    plain = [a for a in node.names if f"{name}.{a.name}" not in known]
    return subs + ([name] if plain else [])


def imports(root: Path = REPO, package: str = PACKAGE) -> list[Import]:
    """Every import between modules of ``package``, wherever in a file it stands."""
    known = modules(root, package)
    found = []
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                where = f"{path.relative_to(root)}:{node.lineno}"
                for target in _targets(node, module, path.name == "__init__.py", known):
                    if target != module:
                        found.append(Import(module, target, where))
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(found: list[Import], layers: list[str] = LAYERS) -> list[str]:
    """One line per import of a room that is not below the importer's room."""
    rank = {name: i for i, name in enumerate(layers)}
    bad = []
    for imp in found:
        src, dst = room(imp.source), room(imp.target)
        if src == dst or dst == "__init__" or {src, dst} - rank.keys():  # undeclared rooms: test_every_room_is_declared
            continue
        if rank[dst] > rank[src]:
            bad.append(f"{imp.where}: {imp.source} imports {imp.target}, but {dst} is above {src} in LAYERS")
    return bad


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def back_door_imports(found: list[Import]) -> list[str]:
    """Imports of a front-door room's inner modules from outside that room."""
    bad = []
    for imp in found:
        door = FRONT_DOORS.get(room(imp.target))
        if door and room(imp.source) != room(imp.target) and imp.target != door:
            bad.append(f"{imp.where}: {imp.source} imports {imp.target}; import from {door} instead")
    return bad


def test_every_room_is_declared():
    rooms = {room(m) for m in modules(REPO)} - {"__init__"}
    assert not sorted(rooms - set(LAYERS)), "add each new room to LAYERS (tests/test_layering.py) first"
    assert not sorted(set(LAYERS) - rooms), "LAYERS names a room the package does not have"


def test_imports_go_down_the_layers():
    bad = upward_imports(imports())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    found = cycles(imports())
    assert not found, "import cycles (function-local imports count):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_front_doors_only():
    bad = back_door_imports(imports())
    assert not bad, "\n".join(bad)


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("statement", [
    "from llmfoundry_lite.finetune.lora import apply_lora",
    "def f():\n    from llmfoundry_lite.finetune import lora\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..finetune.lora import apply_lora\n",
])
def test_an_upward_import_is_named(tmp_path, statement):
    """The checks themselves: an upward import (any form) and the cycle it closes are reported by file and line."""
    root = _fake_package(tmp_path, {
        "__init__.py": "", "models/__init__.py": "", "finetune/__init__.py": "",
        "models/load.py": statement,
        "finetune/lora.py": "from llmfoundry_lite.models.load import x\n",
    })
    found = imports(root)
    bad = upward_imports(found)
    assert len(bad) == 1 and bad[0].startswith(f"{Path(PACKAGE, 'models', 'load.py')}:")
    assert "finetune is above models" in bad[0]
    assert cycles(found) == [["llmfoundry_lite.finetune.lora", "llmfoundry_lite.models.load"]]


def test_a_back_door_into_the_sandbox_is_named(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "sandbox/__init__.py": "from llmfoundry_lite.sandbox.core import Sandbox\n",
        "sandbox/core.py": "", "eval/__init__.py": "",
        "eval/run.py": "from llmfoundry_lite.sandbox import Sandbox\nfrom llmfoundry_lite.sandbox.core import Sandbox\n",
    })
    assert back_door_imports(imports(root)) == [
        f"{Path(PACKAGE, 'eval', 'run.py')}:2: llmfoundry_lite.eval.run imports llmfoundry_lite.sandbox.core; "
        "import from llmfoundry_lite.sandbox instead"]
