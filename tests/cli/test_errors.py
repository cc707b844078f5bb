"""Every command turns a missing path and a bad flag into one line on stderr and exit status 2 — never a traceback.

Each command runs the way a user runs it, as a subprocess of its wrapper (``train.py``, ``data_prep/*.py``,
``eval/humaneval.py``, ``scripts/*.py``) from an empty folder, so relative outputs land there; the
subprocesses run in parallel. The missing-model cases of the four commands that load torch first
(``humaneval``, ``serve``, ``export``, ``convert``) run in-process, sharing one torch import, since
their wrapper is already covered by their bad-flag case. ``python -m llmfoundry_lite`` runs one real
command, and its listing is checked in-process.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MISSING = "/nonexistent-llmfoundry-lite"
"""Prefix of every missing path; each case appends its own name, so the last line must name that very path."""

Case = tuple[list[str], str]
"""The arguments after ``python``, and what the last stderr line must contain."""


def subprocess_cases(out: Path) -> dict[str, Case]:
    """``<command>/<missing|flag>`` → its case; override-style commands get an unknown ``key=value``."""
    found: dict[str, Case] = {
        "train/missing": (["train.py", f"{MISSING}-train.yaml"], f"{MISSING}-train.yaml"),
        "train/flag": (["train.py", str(REPO / "yamls/code-tiny.yaml"), "model.n_layerz=2"], "model.n_layerz"),
        "local_stack/missing": (["data_prep/make_local_stack.py", f"roots=[{MISSING}-root]", f"output={out}/ls"],
                                f"{MISSING}-root"),
        "local_stack/flag": (["data_prep/make_local_stack.py", "languagez=[Python]"], "languagez"),
        # from the empty folder, the relative inputs of the YAML (data/sources/...) do not exist yet
        "shards/missing": (["data_prep/shard_stack.py", str(REPO / "yamls/data/two-sources.yaml")], "data/sources/python"),
        "shards/flag": (["data_prep/shard_stack.py", "shards.max_seq_lenn=3"], "shards.max_seq_lenn"),
        "humaneval/flag": (["eval/humaneval.py", "--samples", "s.jsonl", "--bogus"], "--bogus"),
        "serve/flag": (["scripts/serve.py", "--model", "m", "--bogus"], "--bogus"),
        "export/flag": (["scripts/export_hf.py", "ckpt", "--output", str(out / "hf"), "--bogus"], "--bogus"),
        "convert/flag": (["scripts/convert_checkpoint.py", "ckpt", "--output", str(out / "c.pt"), "--bogus"], "--bogus"),
        "replay_spike/missing": (["scripts/replay_spike.py", f"{MISSING}-run"], f"{MISSING}-run"),
        "replay_spike/flag": (["scripts/replay_spike.py", "runs/x", "--bogus"], "--bogus"),
        "demo/flag": (["scripts/demo.py", "--bogus"], "--bogus"),  # the demo takes no path
        "feedback_export/missing": (["scripts/feedback_export.py", "--db", f"sqlite:///{MISSING}-store.sqlite",
                                     "--output", str(out / "fx")], f"{MISSING}-store.sqlite"),
        "feedback_export/flag": (["scripts/feedback_export.py", "--db", "sqlite:///x", "--output", "o", "--bogus"],
                                 "--bogus"),
        "feedback_loop/missing": (["scripts/feedback_loop.py", "--base", f"{MISSING}-base", "--out", str(out / "loop")],
                                  f"{MISSING}-base"),
        "feedback_loop/flag": (["scripts/feedback_loop.py", "--bogus"], "--bogus"),
        "python -m/missing": (["-m", "llmfoundry_lite", "filter", "--input", f"{MISSING}-m", "--output", str(out / "m")],
                              f"{MISSING}-m"),
    }
    io_commands = {"filter": "data_prep/filter_stack.py", "tokenizer": "data_prep/train_tokenizer.py",
                   "synthesize": "data_prep/synthesize_instruct.py", "feedback_report": "scripts/feedback_report.py",
                   "feedback_to_train": "data_prep/feedback_to_train.py"}
    for name, script in io_commands.items():
        args = [script, "--input", f"{MISSING}-{name}", "--output", str(out / name)]
        found[f"{name}/missing"] = (args, f"{MISSING}-{name}")
        found[f"{name}/flag"] = ([*args, "--bogus"], "--bogus")
    return found


IN_PROCESS: dict[str, tuple[str, list[str], str]] = {
    "humaneval/missing": ("llmfoundry_lite.cli.humaneval", ["--model", f"{MISSING}-model"], f"{MISSING}-model"),
    "serve/missing": ("llmfoundry_lite.cli.serve", ["--model", f"{MISSING}-serve"], f"{MISSING}-serve"),
    "export/missing": ("llmfoundry_lite.cli.export", [f"{MISSING}-export", "--output", "{out}/hf"], f"{MISSING}-export"),
    "convert/missing": ("llmfoundry_lite.cli.convert", [f"{MISSING}-convert", "--output", "{out}/c.pt"],
                        f"{MISSING}-convert"),
}
"""``<command>/missing`` → (module, argv, what the last stderr line must contain); ``{out}`` is a temporary folder."""


def _last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python <args>``, a wrapper named by its path in the repository."""
    command = [sys.executable, *(str(REPO / a) if a.endswith(".py") else a for a in args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """Every subprocess case run once, four at a time."""
    cwd = tmp_path_factory.mktemp("cwd")
    todo = subprocess_cases(tmp_path_factory.mktemp("out"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(todo, pool.map(lambda case: _run(case[0], cwd), todo.values()), strict=True))


def test_every_command_has_both_cases():
    from llmfoundry_lite.__main__ import COMMANDS

    keys = set(subprocess_cases(Path("/tmp"))) | set(IN_PROCESS)
    assert {f"{c}/flag" for c in COMMANDS} <= keys
    assert {f"{c}/missing" for c in COMMANDS if c != "demo"} <= keys


@pytest.mark.parametrize("key", sorted(subprocess_cases(Path("/tmp"))))
def test_user_error_through_the_wrapper(results, key):
    proc, named = results[key], subprocess_cases(Path("/tmp"))[key][1]
    assert "Traceback" not in proc.stderr, f"{key}:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 2, f"{key}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert named in _last_line(proc.stderr), f"{key}: the last stderr line does not name {named!r}:\n{proc.stderr[-1000:]}"


@pytest.mark.parametrize("key", sorted(IN_PROCESS))
def test_missing_model_in_process(key, tmp_path, capsys):
    """An uncaught exception (a traceback for the user) fails this test by propagating."""
    module, argv, named = IN_PROCESS[key]
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main([a.replace("{out}", str(tmp_path)) for a in argv])
    assert exc.value.code == 2
    assert named in _last_line(capsys.readouterr().err)


def test_python_m_lists_the_commands_and_exits_2(capsys):
    from llmfoundry_lite.__main__ import COMMANDS, main

    for argv in ([], ["bogus"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert all(f"\n  {name} " in err for name in COMMANDS)
    assert _last_line(err) == "error: unknown command 'bogus'; choose from " + ", ".join(COMMANDS)
