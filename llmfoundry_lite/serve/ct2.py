"""CTranslate2 backend (optional: ``pip install ctranslate2``): int8 CPU inference of the HF export.

The export is converted once with ``TransformersConverter`` into ``<model>.ct2-<compute type>``
(a ``source.json`` there records what it was converted from; a changed export is re-converted).
CTranslate2 decodes a whole batch per ``generate_batch`` call and takes sampling settings per
call, so this engine batches dynamically: it gathers waiting requests that sample alike (up to
``max_batch`` choices) and runs them together; a per-token callback feeds ``choice`` (stop
sequences, streaming) and stops rows that finished or whose client left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer

from llmfoundry_lite.eval.generation import eos_id_of
from llmfoundry_lite.serve.choice import Choice, Delta, decode_table
from llmfoundry_lite.serve.errors import APIError
from llmfoundry_lite.serve.job import EngineBusy, Job
from llmfoundry_lite.tokenizer import load_tokenizer

log = logging.getLogger(__name__)
SOURCE_FILE = "source.json"


def _hf_export(model: str, work: Path) -> Path:
    """``model`` itself when it is an HF export; otherwise its export written under ``work``."""
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return path
    from llmfoundry_lite.finetune.load import load_model
    from llmfoundry_lite.models.hf_export import export_hf

    net, tokenizer = load_model(model)
    return export_hf(net, tokenizer, work / "hf")


def _source_record(hf: Path) -> dict:
    files = sorted(p for p in hf.iterdir() if p.suffix in (".json", ".safetensors"))
    return {"source": str(hf.resolve()), "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}}


def prepare_ct2(model: str, ct2_dir: str | None, compute_type: str) -> tuple[Path, Tokenizer, int]:
    """The converted model directory (converting when missing or stale), the tokenizer, the context length."""
    out = Path(ct2_dir) if ct2_dir else Path(model).resolve().with_name(Path(model).name + f".ct2-{compute_type}")
    hf = _hf_export(model, out)
    record = _source_record(hf)
    if not (out / "model.bin").is_file() or not (out / SOURCE_FILE).is_file() \
            or json.loads((out / SOURCE_FILE).read_text()) != record:
        from ctranslate2.converters import TransformersConverter

        log.info("converting %s to CTranslate2 (%s) in %s", hf, compute_type, out)
        TransformersConverter(str(hf)).convert(str(out), quantization=compute_type, force=True)
        (out / SOURCE_FILE).write_text(json.dumps(record, indent=1))
    max_seq_len = json.loads((hf / "config.json").read_text())["max_position_embeddings"]
    return out, load_tokenizer(hf), max_seq_len


class CT2Engine:
    """Runs ``Job``s on a CTranslate2 ``Generator`` with dynamic batching (same interface as ``ContinuousEngine``)."""

    def __init__(self, model_dir: Path, tokenizer: Tokenizer, compute_type: str, max_batch: int,
                 max_waiting: int) -> None:
        import ctranslate2

        self.generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type=compute_type)
        self.tokenizer, self.max_batch, self.max_waiting = tokenizer, max_batch, max_waiting
        self.eos_id = eos_id_of(tokenizer)
        self._table = decode_table(tokenizer)
        self._inbox: queue.Queue[Job] = queue.Queue()
        self._held: list[Job] = []  # taken from the inbox, not yet batched
        self._running = 0
        self.counts: Counter[str] = Counter()
        self.last_progress = time.monotonic()
        """When the last token was generated or the thread went idle (``health``'s stuck check)."""
        self._thread = threading.Thread(target=self._loop, name="serving-ct2", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        if job.params.echo or job.params.logprobs is not None:  # generate_batch scores no prompt tokens
            field = "echo" if job.params.echo else "logprobs"
            raise APIError(400, f"{field} is not supported by the ct2 backend; serve with --backend ours", field)
        if self._inbox.qsize() + len(self._held) >= self.max_waiting:
            raise EngineBusy(f"{self.max_waiting} requests are already waiting")
        self._inbox.put(job)

    def cancel(self, job: Job) -> None:
        job.cancelled = True

    def stats(self) -> dict[str, int]:
        return {"running": self._running, "waiting": self._inbox.qsize() + len(self._held), "slots": self.max_batch,
                **self.counts}  # fmt: skip

    def health(self, stuck_after_s: float) -> str | None:
        """None while the generation thread is alive and producing tokens when it has work."""
        if not self._thread.is_alive():
            return "engine thread ended"
        busy = bool(self._running or self._held or self._inbox.qsize())
        idle_s = time.monotonic() - self.last_progress
        return f"engine busy but no token for {idle_s:.1f} s" if busy and idle_s > stuck_after_s else None

    @staticmethod
    def _key(job: Job) -> tuple:
        p = job.params  # one generate_batch call samples alike; a seeded request runs alone (global seed)
        return (p.temperature == 0, p.temperature, p.top_p, p.seed, id(job) if p.seed is not None else 0)

    def _next_batch(self) -> list[Job]:
        if not self._held:
            self.last_progress = time.monotonic()
            self._held.append(self._inbox.get())
            self.last_progress = time.monotonic()  # waiting for work is not being stuck
        while not self._inbox.empty():
            self._held.append(self._inbox.get_nowait())
        key, batch, rows = self._key(self._held[0]), [], 0
        for job in list(self._held):
            if self._key(job) == key and rows + job.n <= self.max_batch:
                batch.append(job)
                rows += job.n
                self._held.remove(job)
        self.counts["cancelled"] += sum(j.cancelled for j in batch)  # clients that left while waiting
        return [j for j in batch if not j.cancelled]

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._run(batch)
            except Exception as err:  # noqa: BLE001 — a failed batch fails its requests, not the server
                log.exception("CTranslate2 batch failed")
                for job in batch:
                    job.sink(Delta(0, "", [], "error", error=f"{type(err).__name__}: {err}"))
                    self.counts["failed"] += 1
            finally:
                self._running = 0

    def _run(self, batch: list[Job]) -> None:
        import ctranslate2

        rows: list[tuple[Job, Choice]] = [(job, c) for job in batch for c in job.start(self._table, self.eos_id)]
        self._running = len(rows)
        p = batch[0].params
        if p.seed is not None:
            ctranslate2.set_random_seed(p.seed)

        def on_token(step) -> bool:  # True stops this row
            job, choice = rows[step.batch_id]
            self.last_progress = time.monotonic()
            if job.cancelled or choice.finish_reason is not None:
                return True
            job.sink(choice.push(step.token_id))
            return choice.finish_reason is not None

        prompts = [[self.tokenizer.id_to_token(i) for i in job.prompt_ids] for job, _ in rows]
        self.generator.generate_batch(
            prompts, max_length=max(c.max_tokens for _, c in rows), include_prompt_in_result=False,
            end_token=[self.eos_id], return_end_token=True, callback=on_token,
            sampling_topk=1 if p.temperature == 0 else 0, sampling_topp=p.top_p,
            sampling_temperature=max(p.temperature, 1e-6),
        )  # fmt: skip
        for job, choice in rows:
            if choice.finish_reason is None and not job.cancelled:  # ended without a reported token: EOS
                job.sink(choice.push(self.eos_id))
        for job in batch:
            self.counts["cancelled" if job.cancelled else "completed"] += 1
