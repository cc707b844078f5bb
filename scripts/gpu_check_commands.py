"""The command rows of ``scripts/gpu_check.sh``: a few steps of each real user command, as subprocesses.

    composer train.py yamls/code-tiny-streams.yaml ...          three streams; every callback on
    composer train.py yamls/finetune/code-tiny-lora.yaml base=...  LoRA from that checkpoint
    python scripts/export_hf.py <lora save folder> --output DIR    merged HF export (+ transformers reload)
    python scripts/serve.py --model DIR --port P                    one POST /v1/completions over HTTP

The speed rows call library functions in-process; these rows launch exactly what a user types (the
launcher, the YAML, the dotted overrides), so a defect that only shows through the launcher, the CLI's
argument handling or the device the command picks (NCCL on one GPU, bf16) shows here. Each row reads
``ok <seconds> s: <what its artifacts say>`` or ``FAILED (<seconds> s): <the error's last line> [file:line]``.
The data are built in a temp dir from the test fixtures (the committed tokenizer, stdlib source text), so
the check needs no ``data/`` and no network. On CPU (``--smoke``) sizes shrink and precision is fp32.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_NOISE = re.compile(
    r"^(ERROR|WARNING|INFO):composer\.cli\.launcher:|^Waiting up to \d+ seconds|^Global rank \d+ ")
"""Lines Composer's launcher adds after a rank dies; the rank's own last words come before them."""
FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
STREAM_SOURCES = {  # the stream names of yamls/code-tiny-streams.yaml, each on its own stdlib files
    "python": ["json/decoder.py", "json/encoder.py", "textwrap.py"],
    "mixed-c": ["colorsys.py", "bisect.py", "heapq.py"],
    "mixed-other": ["fnmatch.py", "shlex.py", "glob.py"],
}
INSTRUCT_SOURCES = ["operator.py", "genericpath.py", "posixpath.py", "heapq.py", "calendar.py"]


@dataclass(frozen=True)
class Outcome:
    """How one command ended: ``detail`` is the artifacts' summary when ok, else the error line."""

    ok: bool
    seconds: float
    detail: str

    def cell(self) -> str:
        """The table's value column."""
        if self.ok:
            return f"ok {self.seconds:.1f} s" + (f": {self.detail}" if self.detail else "")
        return f"FAILED ({self.seconds:.1f} s): {self.detail}"


@dataclass(frozen=True)
class Sizes:
    """Model and run sizes of the command rows: toy ones on CPU, code-tiny's on a GPU."""

    d_model: int
    n_layers: int
    max_seq_len: int
    batches: int
    precision: str
    humaneval: str
    """The ``callbacks.humaneval`` override (flow-style YAML)."""
    timeout_s: float
    """Per command. A GPU machine is ours alone (the whole check stays under 10 minutes); a CPU may be shared."""

    @classmethod
    def for_device(cls, smoke: bool) -> Sizes:
        if smoke:
            return cls(64, 2, 128, 4, "fp32", "{every_n_batches: 4, n_problems: 2, max_new_tokens: 16, workers: 2}",
                       600)
        return cls(256, 4, 512, 8, "amp_bf16", "{every_n_batches: 8, n_problems: 4, max_new_tokens: 32, workers: 4}",
                   150)


def error_line(stdout: str, stderr: str, returncode: int) -> str:
    """The line that says why a command failed: the exception of the last traceback with its innermost
    frame (repo-relative when the file is ours), else the last line the program printed before the
    launcher's own epilogue, else the exit code."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not LAUNCHER_NOISE.match(ln)]
    if not lines:
        lines = [ln for ln in stdout.splitlines() if ln.strip() and not LAUNCHER_NOISE.match(ln)]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    if starts:
        block = lines[starts[-1] + 1:]
        exc = next((ln for ln in block if not ln.startswith((" ", "\t"))), None)
        frames = [m for ln in block if (m := FRAME.match(ln))]
        if exc is not None:
            return exc.strip() + (f" [{_where(frames[-1]['file'])}:{frames[-1]['line']}]" if frames else "")
    return lines[-1].strip() if lines else f"exit code {returncode}, no output"


def _where(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def run_command(argv: list[str], timeout: float, env: dict[str, str] | None = None,
                check: Callable[[str], str] | None = None) -> Outcome:
    """Run ``argv`` from the repository root; on success ``check(stdout)`` reads its output and artifacts
    into the detail (an exception there fails the row with its message)."""
    start = time.monotonic()
    # Its own session: on a timeout the whole tree goes (Composer's launcher leaves its ranks behind otherwise).
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc, signal.SIGTERM)
        return Outcome(False, time.monotonic() - start, f"timed out after {timeout:.0f} s")
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        return Outcome(False, seconds, error_line(stdout, stderr, proc.returncode))
    if check is None:
        return Outcome(True, seconds, "")
    try:
        return Outcome(True, seconds, check(stdout))
    except (OSError, ValueError, KeyError, AssertionError) as e:
        return Outcome(False, seconds, f"ran, but its artifacts are wrong: {type(e).__name__}: {e}")


def write_stream_shards(out: Path, seq_len: int) -> dict[str, Path]:
    """One shard directory per stream of code-tiny-streams.yaml (the fixture builder: test tokenizer,
    stdlib source packed with EOS, a manifest)."""
    from tests.training.shards import write_shards

    return {name: write_shards(out / name, seq_len=seq_len, n_val=2, sources=files)
            for name, files in STREAM_SOURCES.items()}


def write_instructions(out: Path, max_tokens: int) -> tuple[Path, Path, int]:
    """``train.jsonl`` and ``heldout.jsonl`` (every 8th pair) of prompt/response rows made from documented
    stdlib functions (docstring → prompt, source → response), those that fit ``max_tokens`` of the test
    tokenizer; returns both paths and the number of pairs."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_tokenizer() / "tokenizer.json"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for name in INSTRUCT_SOURCES:
        text = (stdlib / name).read_text()
        for node in ast.parse(text).body:
            doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            if not doc:
                continue
            row = {"prompt": f"Write a Python function `{node.name}`: {doc.splitlines()[0]}",
                   "response": f"{ast.get_source_segment(text, node)}\n"}
            if len(tok.encode(row["prompt"] + row["response"]).ids) <= max_tokens:
                rows.append(row)
    if len(rows) < 16:
        raise ValueError(f"only {len(rows)} stdlib functions fit {max_tokens} tokens; add modules to INSTRUCT_SOURCES")
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = out / "train.jsonl", out / "heldout.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i % 8))
    heldout.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if not i % 8))
    return train, heldout, len(rows)


@dataclass
class CommandCheck:
    """The four commands, each on the artifacts of the one before; built in ``work``."""

    work: Path
    smoke: bool
    env: dict[str, str] = field(init=False)
    """The commands' environment: this one, with the checkout first on PYTHONPATH."""
    rows: list[tuple[str, Outcome | str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.size = Sizes.for_device(self.smoke)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _pythonpath()}
        if self.smoke:  # gloo over loopback: the default interface lookup is flaky on shared machines
            self.env.update(GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
        self.pretrain, self.lora, self.hf = self.work / "pretrain", self.work / "lora", self.work / "hf"

    def run(self) -> list[tuple[str, Outcome | str]]:
        """Every row, in order; a row whose input is missing says which row it waited for."""
        shards = write_stream_shards(self.work / "shards", self.size.max_seq_len)
        self._row("composer train.py yamls/code-tiny-streams.yaml", self._train(shards))
        train, heldout, n_pairs = write_instructions(self.work / "instruct", self.size.max_seq_len - 8)
        have_base = (self.pretrain / "latest-rank0.pt").exists()
        self._row(f"composer train.py yamls/finetune/code-tiny-lora.yaml ({n_pairs} pairs)",
                  self._lora(train, heldout) if have_base else "skipped: no pretraining checkpoint (row above)")
        self._row("python scripts/export_hf.py <lora run>",
                  self._export() if (self.lora / "latest-rank0.pt").exists() else "skipped: no LoRA checkpoint")
        served = self.hf if (self.hf / "config.json").exists() else self.pretrain if have_base else None
        label = f"python scripts/serve.py --model <{'export' if served == self.hf else 'pretraining run'}>"
        self._row(label, self._serve(served) if served else "skipped: nothing to serve (rows above)")
        return self.rows

    def _row(self, label: str, outcome: Outcome | str) -> None:
        self.rows.append((label, outcome))
        print(f"  {label}: {outcome.cell() if isinstance(outcome, Outcome) else outcome}", flush=True)

    def _composer(self) -> list[str]:
        composer = Path(sys.executable).with_name("composer")
        return [str(composer)] if composer.exists() else [sys.executable, "-m", "composer.cli.launcher"]

    def _common(self, save: Path) -> list[str]:
        s = self.size
        return [f"save_folder={save}", f"precision={s.precision}", f"max_duration={s.batches}ba",
                f"eval_interval={s.batches}ba", f"save_interval={s.batches}ba", "global_train_batch_size=4",
                "device_eval_batch_size=4", "scheduler.t_warmup=1ba", "loggers.wandb=null",
                "loggers.console_log_interval=1ba", "callbacks.numerical_health.interval=1"]

    def _train(self, shards: dict[str, Path]) -> Outcome:
        s = self.size
        sandbox = [] if shutil.which("bwrap") else ["callbacks.humaneval.sandbox.kind=none"]
        args = [f"model.d_model={s.d_model}", f"model.n_layers={s.n_layers}", "model.n_heads=4", "model.n_kv_heads=2",
                "model.vocab_size=1024", f"model.max_seq_len={s.max_seq_len}", f"tokenizer={_tokenizer()}",
                *[f"{split}_loader.streams.{name}.local={path}" for name, path in shards.items()
                  for split in ("train", "eval")],
                "eval_subset_num_batches=1", "callbacks.loss_spike.min_history=2",
                f"callbacks.humaneval={s.humaneval}", *sandbox, *self._common(self.pretrain)]
        argv = [*self._composer(), "train.py", "yamls/code-tiny-streams.yaml", *args]
        return run_command(argv, self.size.timeout_s, self.env, lambda out: self._train_summary(out, bool(sandbox)))

    def _train_summary(self, stdout: str, unsandboxed: bool) -> str:
        """What shows each default callback ran: stream counts, console lines, the loss-spike
        detector's history (in the checkpoint), grad_health and humaneval metrics."""
        import torch

        summary = json.loads((self.pretrain / "train_summary.json").read_text())
        ckpt = torch.load(self.pretrain / "latest-rank0.pt", map_location="cpu", weights_only=False)
        spikes = ckpt["state"]["callbacks"]["LossSpikeDetector"]
        console = sum(1 for line in stdout.splitlines() if line.startswith("[step "))
        metrics = _last_metrics(self.pretrain / "metrics.jsonl")
        streams = summary["samples_by_stream"]
        if set(streams) != set(STREAM_SOURCES):
            raise ValueError(f"samples_by_stream has {sorted(streams)}, expected {sorted(STREAM_SOURCES)}")
        health = sorted(k for k in metrics if k.startswith("grad_health/"))
        if "humaneval/pass@1" not in metrics or not health:
            raise KeyError(f"metrics.jsonl lacks humaneval/pass@1 or grad_health/* (has {sorted(metrics)[:12]})")
        by_stream = ", ".join(f"{name} {streams[name]}" for name in STREAM_SOURCES)
        unsafe = " (sandbox kind none: no bwrap here)" if unsandboxed else ""
        return (f"{summary['batches']} batches; samples by stream {by_stream}; {console} console lines; "
                f"loss_spike: {len(spikes['history'])} losses, {spikes['num_spikes']} spikes; "
                f"{len(health)} grad_health metrics; HumanEval pass@1 {metrics['humaneval/pass@1']:.2f} "
                f"on {metrics['humaneval/samples']:.0f} samples{unsafe}")

    def _lora(self, train: Path, heldout: Path) -> Outcome:
        n = self.size.max_seq_len
        args = [f"base={self.pretrain}", f"train_loader.data={train}", f"train_loader.max_seq_len={n}",
                f"eval_loader.data={heldout}", f"eval_loader.max_seq_len={n}", *self._common(self.lora)]
        argv = [*self._composer(), "train.py", "yamls/finetune/code-tiny-lora.yaml", *args]
        return run_command(argv, self.size.timeout_s, self.env, lambda out: self._lora_summary())

    def _lora_summary(self) -> str:
        s = json.loads((self.lora / "train_summary.json").read_text())
        before, after = s["heldout_response_loss_before"], s["heldout_response_loss_after"]
        return f"{s['batches']} batches, held-out response loss {before:.3f} -> {after:.3f}"

    def _export(self) -> Outcome:
        argv = [sys.executable, "scripts/export_hf.py", str(self.lora), "--output", str(self.hf),
                "--prompt", "def add(a, b):\n", "--max-new-tokens", "8"]
        return run_command(argv, self.size.timeout_s, self.env, lambda out: self._export_summary())

    def _export_summary(self) -> str:
        sample = (self.hf / "sample_generation.txt").read_text()  # written after transformers reloaded the export
        files = sorted(p.name for p in self.hf.glob("*.safetensors"))
        return f"{', '.join(files)}; transformers reloaded it and generated {len(sample)} characters"

    def _serve(self, model: Path) -> Outcome:
        """Start the server, wait for /health, send one completion with urllib, stop it with SIGINT."""
        port = _free_port()
        argv = [sys.executable, "scripts/serve.py", "--model", str(model), "--port", str(port),
                "--model-name", "check", "--log-level", "warning"]
        start = time.monotonic()
        log = open(self.work / "serve.log", "w+")  # noqa: SIM115 (read back after the process ends)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.env, text=True,
                                start_new_session=True)
        try:
            text = _complete(f"http://127.0.0.1:{port}", proc, deadline=start + self.size.timeout_s)
            outcome = Outcome(True, time.monotonic() - start, f"one /v1/completions answered: {text!r}")
        except (OSError, ValueError, KeyError, TimeoutError) as e:
            log.flush()
            log.seek(0)
            out = log.read()
            reason = error_line("", out, proc.poll() or 0) if proc.poll() is not None else f"{type(e).__name__}: {e}"
            outcome = Outcome(False, time.monotonic() - start, reason)
        finally:
            _stop(proc)
            log.close()
        return outcome


def _complete(base: str, proc: subprocess.Popen, deadline: float) -> str:
    """Poll ``/health`` until the server answers, then one greedy completion; its text."""
    while True:
        if proc.poll() is not None:
            raise ValueError(f"server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                if json.load(r).get("status") == "ok":
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not answer /health in time")
        time.sleep(0.5)
    body = json.dumps({"model": "check", "prompt": "def add(a, b):\n", "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(f"{base}/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=max(5.0, deadline - time.monotonic())) as r:
        answer = json.load(r)
    if answer["usage"]["completion_tokens"] < 1:
        raise ValueError(f"the completion has no tokens: {answer}")
    return answer["choices"][0]["text"]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """``sig`` to the command's process group (SIGINT: uvicorn's graceful stop), SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # ranks or workers the leader left behind
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stdout is not None:
        proc.communicate()  # drain the pipes of a timed-out command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_metrics(path: Path) -> dict[str, float]:
    """Every metric's last value in a metrics.jsonl."""
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        out.update({k: v for k, v in json.loads(line).items() if isinstance(v, (int, float))})
    return out


def _tokenizer() -> Path:
    return ROOT / "tests" / "assets" / "tokenizer"


def _pythonpath() -> str:
    """The repository first (the commands import ``llmfoundry_lite`` from this checkout), then what was set."""
    rest = os.environ.get("PYTHONPATH")
    return f"{ROOT}{os.pathsep}{rest}" if rest else str(ROOT)
