"""Feedback → SFT rows, preference pairs and unpaired rows: exact outputs, every drop counted, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.cli.feedback_to_train import main, parse_args, shown
from llmfoundry_lite.config import ConfigError
from llmfoundry_lite.corpus.benchmarks import default_problems_path, read_jsonl
from llmfoundry_lite.filtering.config import DedupConfig
from llmfoundry_lite.finetune.data import FinetuneDataConfig, load_examples
from llmfoundry_lite.finetune.from_feedback import OUTPUTS, FeedbackToTrainConfig, feedback_to_rows
from llmfoundry_lite.tokenizer.io import load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "tests" / "assets" / "tokenizer"

COMPLETIONS = pa.schema([
    ("id", pa.string()), ("created", pa.float64()), ("model", pa.string()), ("assignment", pa.string()),
    ("user_hash", pa.string()), ("language", pa.string()), ("n_choices", pa.int32()),
    ("prompt_tokens", pa.int32()), ("suffix_tokens", pa.int32()), ("completion_tokens", pa.int32()),
    ("latency_ms", pa.float64()), ("ttft_ms", pa.float64()), ("finish_reasons", pa.string()),
    ("prompt_text", pa.string()), ("suffix_text", pa.string()), ("texts", pa.list_(pa.string())),
])
FEEDBACK = pa.schema([
    ("completion_id", pa.string()), ("choice", pa.int32()), ("event", pa.string()), ("text", pa.string()),
    ("user_hash", pa.string()), ("created", pa.float64()),
])

ADD = 'def add(a, b):\n    """Return the sum of a and b."""\n'
GREET = "# maintainer: alice.smith@acme-corp.io\ndef greet(name):\n"
GREET_SCRUBBED = "# maintainer: <EMAIL>\ndef greet(name):\n"
PARSE = "def parse_port(value):\n"
STATS = "def summarize(values):\n    # mean, spread and extremes of a sample\n"
LONG = ("    total = sum(values)\n    count = len(values)\n    mean = total / count\n"
        "    spread = max(values) - min(values)\n    squares = [(v - mean) ** 2 for v in values]\n"
        "    variance = sum(squares) / count\n    return {'mean': mean, 'spread': spread, 'variance': variance}\n")
LONG_EDIT = LONG.replace("'variance': variance}", "'var': variance}")  # one token differs: a near duplicate
HUMANEVAL_0 = next(iter(read_jsonl(default_problems_path())))["canonical_solution"]


def completion(cid: str, created: float, prompt: str | None, texts: list[str] | None,
               suffix: str | None = None) -> dict:
    n = len(texts) if texts is not None else 1
    return {"id": cid, "created": created, "model": "base", "assignment": "default", "user_hash": None,
            "language": "python", "n_choices": n, "prompt_tokens": 10, "suffix_tokens": 0, "completion_tokens": 5 * n,
            "latency_ms": 12.0, "ttft_ms": 3.0, "finish_reasons": ",".join(["stop"] * n), "prompt_text": prompt,
            "suffix_text": suffix, "texts": texts}


def event(cid: str, choice: int, name: str, text: str | None = None) -> dict:
    return {"completion_id": cid, "choice": choice, "event": name, "text": text, "user_hash": None, "created": 100.0}


def scenario() -> tuple[pa.Table, pa.Table]:
    """One completion per case; ``created`` gives the row order."""
    comps = [
        completion("cmpl-add", 1.0, ADD, ["    return a + b\n", "    return a - b\n"]),  # n=2: accept + reject
        completion("cmpl-greet", 2.0, GREET, ["    return 'hi ' + name\n"]),  # edited; email in the prompt
        completion("cmpl-parse", 3.0, PARSE, ["    return int(value)\n"]),  # rejected only: unpaired
        completion("cmpl-notext", 4.0, None, None),  # texts not recorded
        completion("cmpl-stats1", 5.0, STATS, [LONG]),
        completion("cmpl-stats2", 6.0, STATS, [LONG]),  # exact duplicate of stats1
        completion("cmpl-stats3", 7.0, STATS, [LONG_EDIT]),  # near duplicate of stats1
        completion("cmpl-leak", 8.0, "# find close pairs\n", [HUMANEVAL_0]),  # HumanEval/0's solution
        completion("cmpl-fim", 9.0, "def area(r):\n", ["    return 3.14 * r * r"], suffix="\n\nprint(area(2))\n"),
        completion("cmpl-shown", 10.0, "def nothing():\n", ["    pass\n"]),
    ]
    events = [
        event("cmpl-add", 0, "shown"), event("cmpl-add", 0, "accepted"),
        event("cmpl-add", 1, "shown"), event("cmpl-add", 1, "rejected"),
        event("cmpl-greet", 0, "edited", "    return f'Hello, {name}!'\n"),
        event("cmpl-parse", 0, "rejected"),
        event("cmpl-notext", 0, "accepted"),
        event("cmpl-stats1", 0, "accepted"), event("cmpl-stats2", 0, "accepted"), event("cmpl-stats3", 0, "accepted"),
        event("cmpl-leak", 0, "accepted"),
        event("cmpl-fim", 0, "accepted"),
        event("cmpl-shown", 0, "shown"),
        event("cmpl-purged", 0, "accepted"),  # its completion is gone (retention)
        event("cmpl-parse", 3, "accepted"),  # no such choice
    ]
    return pa.Table.from_pylist(comps, schema=COMPLETIONS), pa.Table.from_pylist(events, schema=FEEDBACK)


def config(**kw) -> FeedbackToTrainConfig:
    return FeedbackToTrainConfig(input="unused", **kw)


@pytest.fixture(scope="module")
def result():
    return feedback_to_rows(*scenario(), config())


def test_sft_rows_from_accepted_and_edited(result):
    assert result.sft == [
        {"prompt": ADD, "response": "    return a + b\n"},
        {"prompt": GREET_SCRUBBED, "response": "    return f'Hello, {name}!'\n"},  # the kept text, scrubbed prompt
        {"prompt": STATS, "response": LONG},
    ]
    assert result.report["outputs"]["sft"] == {
        "seen": 8, "kept": 3, "decontaminated_by_benchmark": {"HumanEval": 1},
        "dropped_by_reason": {"decontaminated": 1, "exact_duplicate": 1, "fim_suffix": 1, "near_duplicate": 1,
                              "no_text": 1},
    }


def test_pair_from_accepted_and_rejected_of_one_prompt(result):
    assert result.preferences == [{"prompt": ADD, "chosen": "    return a + b\n", "rejected": "    return a - b\n"}]
    assert result.report["outputs"]["preferences"] == {"seen": 1, "kept": 1, "dropped_by_reason": {},
                                                       "decontaminated_by_benchmark": {}}


def test_unpaired_rows_are_the_verdicts_no_pair_carries(result):
    assert result.unpaired == [
        {"prompt": GREET_SCRUBBED, "completion": "    return f'Hello, {name}!'\n", "label": True},
        {"prompt": PARSE, "completion": "    return int(value)\n", "label": False},
        {"prompt": STATS, "completion": LONG, "label": True},
    ]
    assert result.report["outputs"]["unpaired"]["dropped_by_reason"] == {
        "decontaminated": 1, "exact_duplicate": 1, "fim_suffix": 1, "in_pair": 2, "near_duplicate": 1, "no_text": 1}


def test_inputs_counted_and_every_output_balances(result):
    report = result.report
    assert report["completions"] == 10 and report["completions_without_text"] == 1
    assert report["events"]["seen"] == 15
    assert report["events"]["dropped_by_reason"] == {"choice_out_of_range": 1, "unknown_completion": 1}
    assert report["choices"] == {"positive": 8, "negative": 2, "shown_only": 1, "conflicting": 0}
    assert report["pii"]["findings"] == {"email": 1, "ip_address": 0, "key": 0}
    for name in OUTPUTS:
        o = report["outputs"][name]
        assert o["seen"] == o["kept"] + sum(o["dropped_by_reason"].values())
        assert o["kept"] == len(getattr(result, name))


def test_pairs_cover_the_grid_up_to_the_cap_and_equal_texts_make_none():
    prompt = "def clamp(x, lo, hi):\n"
    comps = [completion("c1", 1.0, prompt, ["    return max(lo, min(x, hi))\n", "    return x\n"]),
             completion("c2", 2.0, prompt, ["    return min(hi, max(x, lo))\n", "    return lo\n"]),
             completion("c3", 3.0, prompt, ["    return x\n"])]
    events = [event("c1", 0, "accepted"), event("c1", 1, "rejected"), event("c2", 0, "accepted"),
              event("c2", 1, "rejected"), event("c3", 0, "accepted"), event("c3", 0, "rejected")]  # c3: both
    cfg = config(max_pairs_per_prompt=3, dedup=DedupConfig(near=False))
    out = feedback_to_rows(pa.Table.from_pylist(comps, schema=COMPLETIONS),
                           pa.Table.from_pylist(events, schema=FEEDBACK), cfg)
    # chosen [A, B, x] x rejected [x, lo]; walked by i + j: (A,x) (A,lo) (B,x) (B,lo) (x,x) (x,lo)
    a, b = "    return max(lo, min(x, hi))\n", "    return min(hi, max(x, lo))\n"
    assert [(p["chosen"], p["rejected"]) for p in out.preferences] == [
        (a, "    return x\n"), (a, "    return lo\n"), (b, "    return x\n")]
    assert out.report["outputs"]["preferences"]["dropped_by_reason"] == {"over_cap": 2, "same_text": 1}
    assert out.report["choices"]["conflicting"] == 1
    # every verdict but x's acceptance is in a kept pair ((x, x) makes none, (x, lo) was capped)
    assert [(r["completion"], r["label"]) for r in out.unpaired] == [("    return x\n", True)]


def test_config_rejects_unknown_keys_and_needs_one_source(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'max_pairs'"):
        parse_args(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "max_pairs=3"])
    with pytest.raises(ConfigError, match="unknown config key 'dedup.nears'"):
        parse_args(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "dedup.nears=false"])
    with pytest.raises(ConfigError, match="exactly one of input"):
        parse_args(["--output", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="heldout_fraction"):
        parse_args(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "heldout_fraction=1.5"])
    cfg = parse_args(["--db", "postgresql+psycopg://loop:s3cret@db.internal/feedback", "--output", "o"])
    assert shown(cfg).db == "postgresql+psycopg://loop:***@db.internal/feedback"  # what is printed and reported


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "data_prep/feedback_to_train.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_cli_on_a_parquet_export(tmp_path):
    export, out = tmp_path / "export", tmp_path / "out"
    export.mkdir()
    comps, events = scenario()
    pq.write_table(comps, export / "completions.parquet")
    pq.write_table(events, export / "feedback.parquet")
    proc = run_cli("--input", str(export), "--output", str(out), "heldout_fraction=0.4", "seed=3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    held = {name: read_jsonl(out / f"{name}.heldout.jsonl") for name in OUTPUTS}
    train = {name: read_jsonl(out / f"{name}.jsonl") for name in OUTPUTS}
    expected = feedback_to_rows(comps, events, config())
    for name in OUTPUTS:
        rows = getattr(expected, name)
        assert sorted(map(json.dumps, train[name] + held[name])) == sorted(map(json.dumps, rows))
        assert report["outputs"][name]["train"] == len(train[name])
        assert report["outputs"][name]["heldout"] == len(held[name])
    train_prompts = {r["prompt"] for rows in train.values() for r in rows}
    held_prompts = {r["prompt"] for rows in held.values() for r in rows}
    assert held_prompts and not train_prompts & held_prompts  # a prompt sits on one side in every output
    lines = {line.split()[0]: line.split()[1:5] for line in proc.stdout.splitlines() if line.split()}
    assert lines["sft"] == ["8", "3", str(len(train["sft"])), str(len(held["sft"]))]
    assert "PII redacted: email 1" in proc.stdout
    # the fine-tuning loader reads the SFT rows as they are
    examples, dropped = load_examples(FinetuneDataConfig(data=str(out / "sft.jsonl")), load_tokenizer(TOKENIZER))
    assert len(examples) == len(train["sft"]) and not dropped
    # a rerun without a split leaves no stale held-out files behind (in-process: the subprocess is proven above)
    main(["--input", str(export), "--output", str(out)])
    assert not list(out.glob("*.heldout.jsonl"))
    assert len(read_jsonl(out / "sft.jsonl")) == 3


def exit_message(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """What ``main`` prints on stderr as it exits with status 2."""
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_cli_errors_name_the_fix(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert "completions.parquet not found" in exit_message(capsys, "--input", str(tmp_path), "--output", out)
    assert "config error: max_pairs_per_prompt must be positive" in exit_message(
        capsys, "--input", str(tmp_path), "--output", out, "max_pairs_per_prompt=0")
    assert "no SQLite file" in exit_message(capsys, "--db", f"sqlite:///{tmp_path}/nope.sqlite", "--output", out)
    assert "db: not a SQLAlchemy URL" in exit_message(capsys, "--db", "feedback.sqlite", "--output", out)


def test_cli_reads_the_store(tmp_path):
    from llmfoundry_lite.serve.feedback_store import CompletionRecord, FeedbackEvent, FeedbackStore, default_url

    url = default_url(tmp_path)
    with FeedbackStore(url) as store:
        store.record_completion(CompletionRecord(
            id="cmpl-1", created=1.0, model="base", assignment="default", user="u1", language="python", n_choices=2,
            prompt_tokens=8, suffix_tokens=0, completion_tokens=6, latency_ms=10.0, ttft_ms=2.0,
            finish_reasons=("stop", "stop"), prompt_text=ADD, texts=("    return a + b\n", "    return b\n")))
        store.record_feedback(FeedbackEvent("cmpl-1", 0, "accepted", user="u1"))
        store.record_feedback(FeedbackEvent("cmpl-1", 1, "rejected", user="u1"))
    main(["--db", url, "--output", str(tmp_path / "out")])  # in-process: the subprocess path is proven above
    assert read_jsonl(tmp_path / "out" / "preferences.jsonl") == [
        {"prompt": ADD, "chosen": "    return a + b\n", "rejected": "    return b\n"}]
    assert read_jsonl(tmp_path / "out" / "sft.jsonl") == [{"prompt": ADD, "response": "    return a + b\n"}]


def test_near_dedup_compares_answers_to_one_prompt_not_the_prompt():
    # A long prompt and short, different answers: whole-row MinHash would call all of them near-duplicates
    # (the prompt is nearly all of each row); the answers themselves differ, so every row is kept. Two
    # answers that differ in one token are near-duplicates of each other and one goes.
    prompt = "def summarize(values):\n    \"\"\"" + " ".join(f"word{i}" for i in range(120)) + "\"\"\"\n"
    texts = ["    return sorted(values)[len(values) // 2] if values else None\n",
             "    total = 0\n    for v in values:\n        total += v\n    return total\n",
             LONG, LONG_EDIT]
    comps = [completion(f"c{i}", float(i), prompt, [t]) for i, t in enumerate(texts)]
    events = [event(f"c{i}", 0, "accepted") for i in range(len(texts))]
    out = feedback_to_rows(pa.Table.from_pylist(comps, schema=COMPLETIONS),
                           pa.Table.from_pylist(events, schema=FEEDBACK), config())
    assert [r["response"] for r in out.sft] == texts[:3]
    assert out.report["outputs"]["sft"]["dropped_by_reason"] == {"near_duplicate": 1}
