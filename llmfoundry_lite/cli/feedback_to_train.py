"""``python data_prep/feedback_to_train.py (--input DIR | --db URL) --output DIR [cfg.yaml] [key=value ...]``.

What users accepted, edited and rejected becomes training data: ``sft.jsonl`` (prompt → kept text),
``preferences.jsonl`` (chosen vs rejected for one prompt), ``unpaired.jsonl`` (accept/reject without a
pair, for KTO), each PII-scrubbed, deduplicated and decontaminated with the filter stage's code, and
``report.json`` with every drop counted by reason. The rules: ``llmfoundry_lite/finetune/from_feedback.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.config import load_config, split_cli, to_yaml
from llmfoundry_lite.finetune.from_feedback import OUTPUTS, FeedbackRows, FeedbackToTrainConfig, feedback_to_rows

if TYPE_CHECKING:
    import pyarrow as pa

USAGE = "python data_prep/feedback_to_train.py (--input DIR | --db URL) --output DIR [cfg.yaml] [key=value ...]"
EXPORT_FILES = ("completions.parquet", "feedback.parquet")


def parse_args(argv: list[str]) -> FeedbackToTrainConfig:
    """``--input``/``--db``/``--output`` flags, then an optional YAML file and ``key=value`` overrides."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], usage=USAGE)
    parser.add_argument("--input", help="feedback export directory (completions.parquet, feedback.parquet)")
    parser.add_argument("--db", help="feedback store URL (SQLAlchemy), exported to a temporary directory first")
    parser.add_argument("--output", help="output directory (sft/preferences/unpaired.jsonl, report.json)")
    parser.add_argument("rest", nargs="*", help="[config.yaml] [key=value ...]")
    args = parser.parse_args(argv)
    yaml_path, overrides = split_cli(args.rest)
    flags = {k: v for k, v in (("input", args.input), ("db", args.db), ("output", args.output)) if v is not None}
    return load_config(FeedbackToTrainConfig, yaml_path, overrides, flags=flags)


def shown(cfg: FeedbackToTrainConfig) -> FeedbackToTrainConfig:
    """``cfg`` with the database password hidden, for the console and ``report.json``."""
    if not cfg.db:
        return cfg
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return replace(cfg, db=make_url(cfg.db).render_as_string(hide_password=True))
    except ArgumentError:
        raise ValueError("db: not a SQLAlchemy URL (dialect[+driver]://user:password@host/database, "
                         "or sqlite:///path)") from None


def read_export(folder: Path) -> tuple[pa.Table, pa.Table]:
    """The ``completions`` and ``feedback`` tables of an export directory."""
    import pyarrow.parquet as pq

    paths = [folder / name for name in EXPORT_FILES]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --input takes a directory that "
                                    "scripts/feedback_export.py wrote")
    return pq.read_table(paths[0]), pq.read_table(paths[1])


def read_tables(cfg: FeedbackToTrainConfig) -> tuple[pa.Table, pa.Table]:
    """The tables of ``cfg.input``, or of the store at ``cfg.db`` through its Parquet export."""
    if not cfg.db:
        return read_export(Path(cfg.input))
    from sqlalchemy.engine import make_url

    from llmfoundry_lite.serve.feedback_store import FeedbackStore

    url = make_url(cfg.db)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).is_file():  # the store would create an empty one and we would export nothing
        raise FileNotFoundError(f"--db: no SQLite file at {url.database}")

    store = FeedbackStore(cfg.db)
    try:
        with tempfile.TemporaryDirectory(prefix="feedback-export-") as tmp:
            store.export(tmp)
            return read_export(Path(tmp))  # read whole into memory: the folder goes when this returns
    finally:
        store.close()


def heldout_prompts(rows: FeedbackRows, fraction: float, seed: int) -> set[str]:
    """Prompts whose rows go to ``*.heldout.jsonl``, chosen over all three outputs at once (so a prompt is on one
    side everywhere) by the synthesis stage's seeded-hash walk (``synth/split.py``)."""
    if fraction == 0:
        return set()
    from llmfoundry_lite.synth.split import heldout_groups

    return heldout_groups([r["prompt"] for name in OUTPUTS for r in getattr(rows, name)], fraction, seed)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)


def write_outputs(cfg: FeedbackToTrainConfig, rows: FeedbackRows) -> dict:
    """Write the outputs, their held-out parts and ``report.json`` (with each output's train/heldout counts)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    heldout = heldout_prompts(rows, cfg.heldout_fraction, cfg.seed)
    report = rows.report
    for name in OUTPUTS:
        train = [r for r in getattr(rows, name) if r["prompt"] not in heldout]
        held = [r for r in getattr(rows, name) if r["prompt"] in heldout]
        _write_jsonl(out / f"{name}.jsonl", train)
        if cfg.heldout_fraction > 0:
            _write_jsonl(out / f"{name}.heldout.jsonl", held)
        else:  # an earlier run's split would otherwise sit beside this run's rows as if it belonged to them
            (out / f"{name}.heldout.jsonl").unlink(missing_ok=True)
        report["outputs"][name].update(train=len(train), heldout=len(held))
    report["config"] = asdict(shown(cfg))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def table(report: dict) -> str:
    """The report as a few console lines: the inputs, then one row per output."""
    events, choices = report["events"], report["choices"]
    ignored = ", ".join(f"{k} {v}" for k, v in events["dropped_by_reason"].items())
    pii = ", ".join(f"{k} {v}" for k, v in report["pii"]["findings"].items() if v)
    lines = [f"completions {report['completions']} (without text {report['completions_without_text']}); "
             f"events {events['seen']} (ignored: {ignored or 'none'}); choices judged "
             f"{choices['positive'] + choices['negative']} (positive {choices['positive']}, negative "
             f"{choices['negative']}), shown only {choices['shown_only']}; PII redacted: {pii or 'none'}",
             f"{'output':<12}{'seen':>7}{'kept':>7}{'train':>7}{'heldout':>9}  dropped"]
    for name in OUTPUTS:
        o = report["outputs"][name]
        dropped = ", ".join(f"{k} {v}" for k, v in o["dropped_by_reason"].items())
        lines.append(f"{name:<12}{o['seen']:>7}{o['kept']:>7}{o['train']:>7}{o['heldout']:>9}  {dropped or 'none'}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Build the three outputs, print the counts and where they went."""
    with user_errors():
        cfg = parse_args(argv)
    with user_errors(ValueError):  # an unparsable URL, a table without the export's columns
        print(to_yaml(shown(cfg)), end="")
        rows = feedback_to_rows(*read_tables(cfg), cfg)
        report = write_outputs(cfg, rows)
    print(table(report))
    held = ", *.heldout.jsonl" if cfg.heldout_fraction > 0 else ""
    print(f"wrote {cfg.output}/sft.jsonl, preferences.jsonl, unpaired.jsonl{held}, report.json")
