"""The built wheel is the library: it carries every file of ``llmfoundry_lite/``, each of its modules imports
from it, and a filter and a tokenizer command run from it.

The wheel is built from a copy of the sources (the repository gets no ``build/``) with this venv's
setuptools, offline and without build isolation, and installed with ``--no-deps`` into a fresh venv that
sees this venv's dependencies through a ``.pth`` naming its site-packages. Python only adds the lines of a
``.pth`` to ``sys.path``; the ``.pth`` files inside the folder named there are not run, so the editable
install's finder stays off and ``llmfoundry_lite`` can come only from the wheel (checked before it goes in).
Every command runs from a folder outside the repository, so nothing is found through the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"  # installed into the venv by `make install`
NOT_IMPORTED = {
    "llmfoundry_lite.__main__": "runs a command when imported",
    "llmfoundry_lite.sandbox.child": "the sandbox zygote's __main__: sandbox/boot.py ships its source, not the module",
}
IMPORT_ALL = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
ours = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "llmfoundry_lite"}
print(json.dumps({n: getattr(m, "__file__", None) for n, m in ours.items()}))
"""


def _run(cmd: list[str | Path], cwd: Path) -> str:
    """Run ``cmd`` without PYTHONPATH; its stdout, or a failure that shows the end of both streams."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _purelib(python: Path | str) -> Path:
    return Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], Path("/")).strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(the fresh venv's python, the venv, the wheel): the wheel installed alone, the dependencies borrowed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "llmfoundry_lite", src / "llmfoundry_lite", ignore=shutil.ignore_patterns("__pycache__"))
    _run([UV, "build", "--wheel", "--offline", "--no-build-isolation", "--python", sys.executable,
          "--out-dir", tmp / "dist", src], tmp)
    (wheel,) = (tmp / "dist").glob("llmfoundry_lite-*.whl")

    venv = tmp / "venv"
    _run([UV, "venv", "--offline", "--python", sys.executable, venv], tmp)
    python = venv / "bin" / "python"
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (_purelib(python) / "_llmfoundry_lite_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    found = _run([python, "-c", "import importlib.util as u; print(u.find_spec('llmfoundry_lite'))"], tmp)
    assert found.strip() == "None", f"llmfoundry_lite is visible before the wheel is installed: {found}"
    _run([UV, "pip", "install", "--offline", "--no-deps", "--python", python, wheel], tmp)
    return python, venv, wheel


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
    files = json.loads(_run([python, "-c", IMPORT_ALL, json.dumps(importable)], venv.parent).splitlines()[-1])
    assert set(importable) <= set(files)
    assert files["llmfoundry_lite"] == str(_purelib(python) / "llmfoundry_lite" / "__init__.py")
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
    _run([python, "-m", "llmfoundry_lite", "filter", "--input", tmp_path / "corpus", "--output", out], tmp_path)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["seen"] == stats["kept"] == len(files) and stats["rejected"] == stats["skipped"] == 0

    _run([python, "-m", "llmfoundry_lite", "tokenizer", "--input", out / "kept", "--output", out / "tok",
          "vocab_size=1024"], tmp_path)
    assert json.loads((out / "tok" / "manifest.json").read_text())["vocab_size"] == 1024
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tok" / "tokenizer.json"))
    text = files[0].read_text()
    assert tok.get_vocab_size() == 1024 and tok.decode(tok.encode(text).ids) == text
