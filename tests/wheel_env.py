"""This package as users deploy it: a wheel built from a copy of the sources, installed alone into a fresh venv.

The wheel is built with this venv's setuptools, offline and without build isolation (the repository gets no
``build/``), and installed with ``--no-deps`` into a venv that sees this venv's dependencies through a
``.pth`` naming its site-packages. Python only adds the lines of a ``.pth`` to ``sys.path``; the ``.pth``
files inside the folder named there are not run, so the editable install's finder stays off and
``llmfoundry_lite`` can come only from the wheel (checked before it goes in).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"  # installed into the venv by `make install`


def run(cmd: list[str | Path], cwd: Path) -> str:
    """Run ``cmd`` without PYTHONPATH; its stdout, or a failure that shows the end of both streams."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def purelib(python: Path | str) -> Path:
    return Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], Path("/")).strip())


def wheel_venv(tmp: Path) -> tuple[Path, Path, Path]:
    """(the fresh venv's python, the venv, the wheel), all under ``tmp``."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "llmfoundry_lite", src / "llmfoundry_lite", ignore=shutil.ignore_patterns("__pycache__"))
    run([UV, "build", "--wheel", "--offline", "--no-build-isolation", "--python", sys.executable,
         "--out-dir", tmp / "dist", src], tmp)
    (wheel,) = (tmp / "dist").glob("llmfoundry_lite-*.whl")
    venv = tmp / "venv"
    run([UV, "venv", "--offline", "--python", sys.executable, venv], tmp)
    python = venv / "bin" / "python"
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (purelib(python) / "_llmfoundry_lite_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    found = run([python, "-c", "import importlib.util as u; print(u.find_spec('llmfoundry_lite'))"], tmp)
    assert found.strip() == "None", f"llmfoundry_lite is visible before the wheel is installed: {found}"
    run([UV, "pip", "install", "--offline", "--no-deps", "--python", python, wheel], tmp)
    return python, venv, wheel
