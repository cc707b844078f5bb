"""``make test``'s worker groups: tests of one shared service really run on one pytest-xdist worker
(``tests/conftest.py``: ``join_group``, which works around pytest 9 ignoring xdist 3.8's node-id suffix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_group_runs_on_one_worker_and_the_rest_spreads(tmp_path):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.conftest import join_group\n\n"
        "def pytest_collection_modifyitems(config, items):\n"
        "    for item in items:\n"
        "        if 'grouped' in item.name:\n"
        "            join_group(item, 'svc')\n")
    (tmp_path / "test_w.py").write_text(
        "import os, pathlib, time, pytest\n\n"
        "@pytest.mark.parametrize('i', range(6))\ndef test_grouped(i):\n"
        "    pathlib.Path(f'grouped{i}').write_text(os.environ['PYTEST_XDIST_WORKER'])\n\n"
        "@pytest.mark.parametrize('i', range(6))\ndef test_free(i):\n"
        "    time.sleep(0.2)\n"
        "    pathlib.Path(f'free{i}').write_text(os.environ['PYTEST_XDIST_WORKER'])\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
                           "no:cacheprovider", "test_w.py"], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grouped = {(tmp_path / f"grouped{i}").read_text() for i in range(6)}
    free = {(tmp_path / f"free{i}").read_text() for i in range(6)}
    assert len(grouped) == 1, f"the group's tests ran on {grouped}"
    assert free == {"gw0", "gw1"}, "the ungrouped tests did not spread over both workers"
