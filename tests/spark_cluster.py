"""A Spark standalone cluster on loopback for the tests: a master and two workers, each its own JVM.

This is the topology users run (YARN, Dataproc and standalone clusters alike), not ``local[N]``: the
driver (the pytest process) talks to executors that the workers start as separate processes, each in its
worker's own ``--work-dir`` — a directory that is not the driver's working directory, so a relative path
the driver hands to a task names another place there. Tasks can be retried and (with ``SPECULATION``)
speculated. The workers bind 127.0.0.1 and 127.0.0.2, two host names as far as Spark knows: the
scheduler never starts a speculative copy of a task on the host where it already runs, so one host
would never speculate. The daemons ship in the pyspark wheel (``spark-class``); nothing is downloaded.

The workers offer more cores than one application takes (``cores_per_app``), so a second driver (a
``spark-submit`` the test starts, e.g. with speculation on) gets executors while the test session's
application holds its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
REPO = Path(__file__).resolve().parent.parent

# Every task may get a speculative copy at once: quantile 0 and multiplier 1 make any running task
# "slow" as soon as one finished, min runtime 0 removes the grace period (all read by the driver).
SPECULATION = {
    "spark.speculation": "true",
    "spark.speculation.quantile": "0.0",
    "spark.speculation.multiplier": "1.0",
    "spark.speculation.minTaskRuntime": "0ms",
    "spark.speculation.interval": "10ms",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SparkCluster:
    """``with SparkCluster(root) as cluster:`` — master + one worker; ``cluster.url`` is ``spark://…``."""

    HOSTS = ("127.0.0.1", "127.0.0.2")

    def __init__(self, root: Path, worker_cores: int = 2, worker_memory: str = "3g", cores_per_app: int = 2,
                 executor_memory: str = "1g") -> None:
        self.root = root
        self.worker_cores, self.worker_memory = worker_cores, worker_memory
        self.cores_per_app, self.executor_memory = cores_per_app, executor_memory
        self.port, self.ui_port = _free_port(), _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.work_dirs = [root / f"worker-{i}-work" for i in range(len(self.HOSTS))]
        self.procs: list[subprocess.Popen] = []

    def _daemon(self, name: str, args: list[str], cwd: Path, host: str = "127.0.0.1") -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": host,
               "SPARK_LOCAL_DIRS": str(cwd / "local"), "PYSPARK_PYTHON": sys.executable,
               "SPARK_DAEMON_MEMORY": "512m"}
        env.pop("PYSPARK_DRIVER_PYTHON", None)
        log = (self.root / f"{name}.log").open("w")
        proc = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                state = json.load(r)
        except OSError:
            return 0
        return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))

    def __enter__(self) -> SparkCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self._daemon("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.port), "--webui-port", str(self.ui_port)], self.root / "master")
        for i, (host, work_dir) in enumerate(zip(self.HOSTS, self.work_dirs, strict=True)):
            self._daemon(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", self.url, "--host", host,
                                         "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                                         "--work-dir", str(work_dir), "--webui-port", str(_free_port())],
                         self.root / f"worker-{i}", host)
        names = ["master", *(f"worker-{i}" for i in range(len(self.HOSTS)))]
        deadline = time.monotonic() + 120
        while self._alive_workers() < len(self.HOSTS):
            for name, proc in zip(names, self.procs, strict=True):
                if proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError(f"spark {name} exited: {(self.root / f'{name}.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"not all workers registered with {self.url} in 120 s: "
                                   f"{(self.root / 'worker-1.log').read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs.clear()

    def conf(self, **extra: str) -> dict[str, str]:
        """The configuration of one application on this cluster (the driver on 127.0.0.1).

        Executors run ``sys.executable`` (this venv, where the package is installed) and see the repository
        on ``PYTHONPATH`` only so that helpers defined in ``tests/`` unpickle; the package itself comes from
        the venv, and their working directory is the worker's, never the driver's."""
        return {
            "spark.master": self.url,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.cores.max": str(self.cores_per_app),
            "spark.executor.cores": "1",
            "spark.executor.memory": self.executor_memory,
            "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
            "spark.executorEnv.PYTHONPATH": str(REPO),
            "spark.executorEnv.OMP_NUM_THREADS": "1",
            "spark.sql.shuffle.partitions": "4",
            "spark.ui.enabled": "false",
            **extra,
        }

    def submit_args(self, **extra: str) -> list[str]:
        """``spark-submit`` arguments for a second driver on this cluster (``--master`` and ``--conf``s)."""
        conf = self.conf(**extra)
        out = ["--master", conf.pop("spark.master")]
        for key, value in conf.items():
            out += ["--conf", f"{key}={value}"]
        return out

    def executor_dirs(self) -> list[Path]:
        """The working directories the workers gave their executors (``<work-dir>/<app>/<executor>``)."""
        return sorted(p for d in self.work_dirs if d.exists() for p in d.glob("*/*") if p.is_dir())
