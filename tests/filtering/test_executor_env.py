"""Executors that do not share the driver's disk: the code comes in a packed environment, the list files
from the driver.

The application is a ``spark-submit`` of ``data_prep/filter_stack.py`` on the test cluster, shipped the way
docs/scaling.md tells users to: a wheel of this package installed into an environment, packed as a tar.gz
and given with ``--archives env.tar.gz#environment``, executors running ``./environment/bin/python``
(``spark.pyspark.python``). The environment's ``sitecustomize`` makes every executor Python process refuse
to open anything in the driver's checkout of the code and the directory holding the run's list files (an audit
hook), and logs which interpreter it is: a task that imported the package from the driver's checkout or
opened a list file by its driver path fails instead of working by luck of a shared disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from llmfoundry_lite.filtering.pipeline import run_filter
from tests.filtering.stack_rows import module, stack_row, write_stack
from tests.spark_cluster import REPO
from tests.wheel_env import purelib, wheel_venv

SITECUSTOMIZE = '''
import os, sys
_log = os.environ.get("EXECUTOR_LOG")
if _log:
    with open(_log, "a") as f:
        f.write(f"{os.getpid()} {sys.executable} {sys.prefix}\\n")
_roots = tuple(r for r in os.environ.get("DRIVER_ONLY", "").split(os.pathsep) if r)
if _roots:
    def _driver_only(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if any(path == r or path.startswith(r + os.sep) for r in _roots):
                raise PermissionError(f"executor opened {path}: that is the driver's disk")
    sys.addaudithook(_driver_only)
'''


@pytest.fixture(scope="module")
def packed_env(tmp_path_factory) -> Path:
    """``env.tar.gz``: the venv of ``tests/wheel_env.py`` (this package's wheel alone; its dependencies reached
    through a ``.pth`` to the test venv's site-packages — a deployment installs them into the environment,
    what matters here is that the package is the wheel's) plus the guarding ``sitecustomize``."""
    root = tmp_path_factory.mktemp("packed")
    python, venv, _ = wheel_venv(root)
    (purelib(python) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    archive = root / "env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(venv, arcname=".")
    return archive


def _corpus(root: Path) -> tuple[Path, Path, Path]:
    """Inputs (on the 'shared' filesystem) and an opt-out list + a benchmark file (on the driver's disk only)."""
    rows = [stack_row(f"m{i}.py", module(i), repo=f"org/repo{i % 3}") for i in range(1, 10)]
    write_stack(root / "shared" / "in" / "a.parquet", rows)
    driver = root / "driver-only"
    driver.mkdir()
    (driver / "opt_out.txt").write_text("ORG/repo2\n")
    (driver / "bench.jsonl").write_text(json.dumps({"task_id": "b/0", "prompt": module(4)}) + "\n")
    return root / "shared" / "in", driver / "opt_out.txt", driver / "bench.jsonl"


@pytest.mark.slow
def test_a_packed_environment_runs_the_filter_on_executors_that_cannot_see_the_driver_s_disk(
        packed_env, tmp_path, spark_cluster, filter_cfg):
    inputs, opt_out, bench = _corpus(tmp_path)
    flags = ["decontam.humaneval=false", f"opt_out.files=[{opt_out}]", f"decontam.files=[{bench}]", "report=false"]
    local = run_filter(filter_cfg(*flags, input=[str(inputs)], output=str(tmp_path / "local")), progress=False)
    assert local["rejected_by_reason"]["opt_out"] == 3 and local["rejected_by_reason"]["decontaminated"] == 1

    log = tmp_path / "shared" / "executors.log"
    out = tmp_path / "shared" / "out"
    conf = {"spark.pyspark.python": "./environment/bin/python",  # relative: the archive unpacked in the executor's dir
            "spark.pyspark.driver.python": sys.executable,
            "spark.archives": f"{packed_env}#environment",
            "spark.executorEnv.PYTHONPATH": "",  # the cluster fixture's repository path: not here
            "spark.executorEnv.EXECUTOR_LOG": str(log),
            # the checkout's code and the list files' folder (the test venv under REPO stands in for the
            # cluster's own Spark installation and the environment's dependencies: executors may read it)
            "spark.executorEnv.DRIVER_ONLY": os.pathsep.join(
                [*(str(REPO / d) for d in ("llmfoundry_lite", "data_prep", "tests")), str(opt_out.parent)])}
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_PYTHON"}
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable  # spark-submit finds SPARK_HOME with it; the driver runs it
    env["PYTHONPATH"] = str(REPO)  # the driver runs this checkout's code (executors get none of its PYTHONPATH)
    proc = subprocess.run([str(Path(sys.executable).with_name("spark-submit")), *spark_cluster.submit_args(**conf),
                           "data_prep/filter_stack.py", "--input", str(inputs), "--output", str(out), "engine=spark",
                           "workers=1", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    stats = json.loads((out / "stats.json").read_text())
    assert {k: v for k, v in stats.items() if k != "config_hash"} == \
        {k: v for k, v in local.items() if k != "config_hash"}
    # every executor Python process was the packed environment's, unpacked in an executor's directory
    lines = [line.split(" ") for line in log.read_text().splitlines()]
    assert lines, "no executor Python process started from the packed environment"
    executor_dirs = [str(d) for d in spark_cluster.work_dirs]
    for _, executable, prefix in lines:
        assert executable.endswith("environment/bin/python"), executable
        assert any(prefix.startswith(d) for d in executor_dirs), prefix
