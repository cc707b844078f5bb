"""The built wheel is the library: it carries every file of ``llmfoundry_lite/``, each of its modules imports
from it, and a filter and a tokenizer command run from it.

The wheel and its venv are ``tests/wheel_env.py``'s. Every command runs from a folder outside the repository,
so nothing is found through the working directory.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.wheel_env import ROOT, purelib, run, wheel_venv

pytestmark = pytest.mark.slow
NOT_IMPORTED = {
    "llmfoundry_lite.__main__": "runs a command when imported",
    "llmfoundry_lite.sandbox.child": "the sandbox zygote's __main__: sandbox/boot.py ships its source, not the module",
    "llmfoundry_lite.sandbox.checker": "zygote code importing sandbox_kernel: sandbox/boot.py ships its source, not the module",
}
IMPORT_ALL = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
ours = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "llmfoundry_lite"}
print(json.dumps({n: getattr(m, "__file__", None) for n, m in ours.items()}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the fresh venv's python, the venv, the wheel): the wheel installed alone, the dependencies borrowed."""
    return wheel_venv(tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_every_file_of_the_library(installed):
    """A run-time data file that pyproject's package-data does not declare is missing here."""
    _, _, wheel = installed
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "llmfoundry_lite").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("llmfoundry_lite/")}
    assert sorted(source - shipped) == []
    assert not any(n.startswith(("benchmarks/", "tests/")) for n in zipfile.ZipFile(wheel).namelist())


def test_every_module_imports_from_the_wheel(installed):
    python, venv, wheel = installed
    names = sorted(
        n.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for n in zipfile.ZipFile(wheel).namelist() if n.startswith("llmfoundry_lite/") and n.endswith(".py")
    )
    assert "llmfoundry_lite" in names and "llmfoundry_lite.filtering.pii.scrub" in names
    importable = [n for n in names if n not in NOT_IMPORTED]
    files = json.loads(run([python, "-c", IMPORT_ALL, json.dumps(importable)], venv.parent).splitlines()[-1])
    assert set(importable) <= set(files)
    assert files["llmfoundry_lite"] == str(purelib(python) / "llmfoundry_lite" / "__init__.py")
    elsewhere = {n: f for n, f in files.items() if f is not None and not Path(f).is_relative_to(venv)}
    assert elsewhere == {}


def _corpus(folder: Path, n: int) -> list[Path]:
    """``n`` small, distinct Python modules (no two near-duplicates, so the filter keeps them all)."""
    folder.mkdir()
    words = ["parse", "render", "merge", "score", "encode", "split", "load", "rank"]
    files = []
    for i in range(n):
        verb, noun = words[i], words[(i * 3 + 1) % len(words)]
        body = "".join(f"    {noun}_{j} = {verb}_input[{j}] * {i + j} - len({noun!r})\n" for j in range(i + 2))
        text = (f'"""{verb.title()} the {noun} table of module {i}."""\n\n\n'
                f"def {verb}_{noun}({verb}_input: list[int]) -> int:\n"
                f'    """{verb.title()} then {noun} the input ({i} steps)."""\n{body}'
                f"    return {' + '.join(f'{noun}_{j}' for j in range(i + 2))}\n")
        files.append(folder / f"{verb}_{noun}.py")
        files[-1].write_text(text)
    return files


def test_filter_and_tokenizer_run_from_the_wheel(installed, tmp_path):
    python, _, _ = installed
    files = _corpus(tmp_path / "corpus", 6)
    out = tmp_path / "filtered"
    run([python, "-m", "llmfoundry_lite", "filter", "--input", tmp_path / "corpus", "--output", out], tmp_path)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["seen"] == stats["kept"] == len(files) and stats["rejected"] == stats["skipped"] == 0

    run([python, "-m", "llmfoundry_lite", "tokenizer", "--input", out / "kept", "--output", out / "tok",
          "vocab_size=1024"], tmp_path)
    assert json.loads((out / "tok" / "manifest.json").read_text())["vocab_size"] == 1024
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tok" / "tokenizer.json"))
    text = files[0].read_text()
    assert tok.get_vocab_size() == 1024 and tok.decode(tok.encode(text).ids) == text
