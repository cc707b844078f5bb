"""The pure-Python parts of ``scripts/gpu_check.sh``: rows, the error line of a failed command, the
SDPA backend names. The command rows themselves run in ``scripts/gpu_check.sh --smoke`` (minutes, not here)."""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402
import gpu_check_commands as gcc  # noqa: E402


def test_ok_and_failed_cells_and_the_table():
    assert gcc.Outcome(True, 12.34, "4 batches").cell() == "ok 12.3 s: 4 batches"
    assert gcc.Outcome(True, 1.0, "").cell() == "ok 1.0 s"
    assert gcc.Outcome(False, 3.0, "ValueError: x").cell() == "FAILED (3.0 s): ValueError: x"
    table = gpu_check.format_table([("a", "ok 1.0 s"), ("longer name", "FAILED (2.0 s): boom")])
    assert table.splitlines() == ["a            ok 1.0 s", "longer name  FAILED (2.0 s): boom"]


def test_a_failing_command_shows_the_exceptions_line_and_where(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("print('starting')\ndef f():\n    raise ValueError('model.n_heads=3 does not divide 256')\nf()\n")
    out = gcc.run_command([sys.executable, str(script)], timeout=60)
    assert not out.ok
    assert out.cell().startswith("FAILED (")
    assert out.detail == f"ValueError: model.n_heads=3 does not divide 256 [{script}:3]"


def test_the_error_line_skips_composers_launcher_epilogue():
    stderr = textwrap.dedent("""\
        Traceback (most recent call last):
          File "/x/site-packages/composer/trainer.py", line 10, in fit
            raise RuntimeError("outer")
        RuntimeError: outer

        During handling of the above exception, another exception occurred:

        Traceback (most recent call last):
          File "%s/llmfoundry_lite/finetune/lora.py", line 88, in load
            raise KeyError("lora.r")
        KeyError: 'lora.r'
        ERROR:composer.cli.launcher:Rank 0 crashed with exit code 1.
        Waiting up to 30 seconds for all training processes to terminate. Press Ctrl-C to exit immediately.
        Global rank 0 (PID 18020) exited with code 1
        ERROR:composer.cli.launcher:Global rank 0 (PID 18020) exited with code 1
        """) % ROOT
    assert gcc.error_line("", stderr, 1) == "KeyError: 'lora.r' [llmfoundry_lite/finetune/lora.py:88]"
    one_line = "config error: model.d_model=256 is not divisible by model.n_heads=3\n" \
               "ERROR:composer.cli.launcher:Rank 0 crashed with exit code 2.\n"
    assert gcc.error_line("", one_line, 2) == "config error: model.d_model=256 is not divisible by model.n_heads=3"
    assert gcc.error_line("last words on stdout\n", "", 3) == "last words on stdout"
    assert gcc.error_line("", "", 4) == "exit code 4, no output"


def test_a_check_that_rejects_the_artifacts_fails_the_row():
    def check(stdout: str) -> str:
        raise KeyError(f"metrics.jsonl lacks humaneval/pass@1 (stdout {stdout.strip()!r})")

    out = gcc.run_command([sys.executable, "-c", "print('trained')"], timeout=60, check=check)
    assert not out.ok and out.detail.startswith("ran, but its artifacts are wrong: KeyError:")
    assert "stdout 'trained'" in out.detail


def test_a_timed_out_command_takes_its_children_with_it(tmp_path):
    # Composer's launcher is a parent of its ranks: killing only the launcher would leave them training.
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    out = gcc.run_command([sys.executable, "-c", code], timeout=3)
    assert not out.ok and out.detail == "timed out after 3 s"
    child = int(pid_file.read_text())
    for _ in range(50):  # reparented to init, which reaps it shortly after the kill
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the timed-out command's child {child} is still alive")


def test_instruction_pairs_fit_the_context_and_keep_a_heldout_split(tmp_path):
    from tokenizers import Tokenizer

    train, heldout, n = gcc.write_instructions(tmp_path, max_tokens=120)
    rows = [json.loads(line) for path in (train, heldout) for line in path.read_text().splitlines()]
    assert len(rows) == n >= 16 and len(heldout.read_text().splitlines()) == (n + 7) // 8
    tok = Tokenizer.from_file(str(ROOT / "tests/assets/tokenizer/tokenizer.json"))
    assert max(len(tok.encode(r["prompt"] + r["response"]).ids) for r in rows) <= 120
    assert all(r["response"].startswith("def ") for r in rows)


def test_sdpa_backends_are_named_from_the_dispatchers_ops():
    assert gpu_check.sdpa_backends({"aten::scaled_dot_product_attention",
                                    "aten::_scaled_dot_product_attention_math"}) == ["math"]
    assert gpu_check.sdpa_backends({"aten::_scaled_dot_product_efficient_attention_backward"}) == ["mem-efficient"]
    assert gpu_check.sdpa_backends({"aten::_scaled_dot_product_cudnn_attention",
                                    "aten::_scaled_dot_product_flash_attention"}) == ["cudnn", "flash"]
    assert gpu_check.sdpa_backends({"aten::_scaled_dot_product_flash_attention_for_cpu"}) == ["flash"]
    assert gpu_check.sdpa_backends({"aten::bmm"}) == []
