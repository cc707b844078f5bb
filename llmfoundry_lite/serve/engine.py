"""Continuous batching for our Transformer: one engine thread, one forward per step for all requests.

Each step first admits waiting requests into free KV-cache slots (one slot per choice) and
prefills them together, then decodes one token for every running choice in a single forward.
A choice that finishes frees its slot at once, so a new request joins the batch on the next
step instead of waiting for the slowest one (continuous, "in-flight" batching). Requests are
admitted first come, first served; one whose ``n`` does not fit yet waits at the head, so
large requests are not starved. The ``n`` choices of a request share one prefill: its keys
and values are copied into their slots.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter, deque

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.eval.generation import eos_id_of
from llmfoundry_lite.models.generate import _pick
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.serve.choice import Choice, Delta, decode_table
from llmfoundry_lite.serve.job import EngineBusy, Job
from llmfoundry_lite.serve.slots import SlotCache, decode, prefill

log = logging.getLogger(__name__)


class ContinuousEngine:
    """Runs ``Job``s on ``model`` with up to ``max_batch`` choices decoded together."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, max_batch: int, max_waiting: int) -> None:
        self.model = model.eval()
        self.max_seq_len = model.cfg.max_seq_len
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.eos_id = eos_id_of(tokenizer)
        self.device = next(model.parameters()).device
        self._table = decode_table(tokenizer)
        self._cache = SlotCache(model, max_batch)
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: deque[Job] = deque()
        self._running: dict[int, tuple[Job, Choice]] = {}  # slot → its choice
        self._generators: dict[tuple[int, int], torch.Generator] = {}  # (id(job), choice) → seeded generator
        self.counts: Counter[str] = Counter()
        """Finished requests by outcome (``completed``, ``cancelled``, ``failed``) and ``steps`` run."""
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)
        self._thread.start()

    # ---- called from the server's threads -------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job``; raises ``EngineBusy`` when ``max_waiting`` requests already wait."""
        if self._inbox.qsize() + len(self._waiting) >= self.max_waiting:
            raise EngineBusy(f"{self.max_waiting} requests are already waiting")
        self._inbox.put(job)

    def cancel(self, job: Job) -> None:
        """Stop ``job`` (its client left); its slots are freed before the next step."""
        job.cancelled = True

    def stats(self) -> dict[str, int]:
        return {"running": len(self._running), "waiting": len(self._waiting) + self._inbox.qsize(),
                "slots": self.max_batch, **self.counts}  # fmt: skip

    def close(self) -> None:
        self._closing = True
        self._inbox.put(None)
        self._thread.join(timeout=10)

    # ---- the engine thread ----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closing:
            self._take_new(block=not self._running and not self._waiting)
            self._drop_cancelled()
            try:
                admitted = self._admit()
                if admitted:
                    self._prefill(admitted)
                if self._running:
                    self._decode_step()
            except Exception as err:  # noqa: BLE001 — a failed step fails its requests, not the server
                log.exception("engine step failed")
                self._fail_running(f"{type(err).__name__}: {err}")

    def _take_new(self, block: bool) -> None:
        try:
            job = self._inbox.get(block=block)
            while True:
                if job is not None:
                    self._waiting.append(job)
                job = self._inbox.get_nowait()
        except queue.Empty:
            pass  # nothing more queued right now

    def _drop_cancelled(self) -> None:
        for slot, (job, _) in list(self._running.items()):
            if job.cancelled:
                del self._running[slot]
                if not any(j is job for j, _ in self._running.values()):
                    self._forget(job, "cancelled")
        for job in [j for j in self._waiting if j.cancelled]:
            self._waiting.remove(job)
            self.counts["cancelled"] += 1

    def _admit(self) -> list[tuple[Job, list[int]]]:
        free = [s for s in range(self.max_batch) if s not in self._running]  # lowest first: short decode slice
        admitted = []
        while self._waiting and self._waiting[0].n <= len(free):
            job = self._waiting.popleft()
            slots, free = free[: job.n], free[job.n :]
            for slot, choice in zip(slots, job.start(self._table, self.eos_id), strict=True):
                self._running[slot] = (job, choice)
                if job.params.seed is not None:
                    gen = torch.Generator(device=self.device).manual_seed(job.params.seed + choice.index)
                    self._generators[(id(job), choice.index)] = gen
            admitted.append((job, slots))
        return admitted

    def _prefill(self, admitted: list[tuple[Job, list[int]]]) -> None:
        logits_BV = prefill(self.model, self._cache, [job.prompt_ids for job, _ in admitted],
                            [slots[0] for _, slots in admitted])  # fmt: skip
        for row, (job, slots) in enumerate(admitted):
            n = len(job.prompt_ids)
            for slot in slots[1:]:  # the other choices reuse the first one's prompt keys and values
                self._cache.k[:, slot, :, :n] = self._cache.k[:, slots[0], :, :n]
                self._cache.v[:, slot, :, :n] = self._cache.v[:, slots[0], :, :n]
                self._cache.lengths[slot] = n
            for slot in slots:
                self._advance(slot, logits_BV[row : row + 1])

    def _decode_step(self) -> None:
        hi = max(self._running) + 1
        tokens = [self._running[s][1].tokens[-1] if s in self._running else None for s in range(hi)]
        logits_BV = decode(self.model, self._cache, tokens)
        self.counts["steps"] += 1
        greedy_B = logits_BV.argmax(dim=-1).tolist()  # one argmax and one copy for every greedy row
        for slot in sorted(self._running):
            self._advance(slot, logits_BV[slot : slot + 1], greedy_B[slot])

    def _advance(self, slot: int, logits_1V: torch.Tensor, greedy: int | None = None) -> None:
        """Sample the next token of the choice in ``slot``, report it, free the slot if it finished.
        ``greedy`` is the row's argmax when already computed for the whole batch."""
        job, choice = self._running[slot]
        if job.params.temperature <= 0.0 and greedy is not None:
            token = greedy  # what ``_pick`` returns at temperature 0
        else:
            gen = self._generators.get((id(job), choice.index))
            token = int(_pick(logits_1V, job.params.temperature, job.params.top_p, gen)[0])
        job.sink(choice.push(token))
        if choice.finish_reason is not None:
            del self._running[slot]
            if all(c.finish_reason is not None for c in job.choices):
                self._forget(job, "completed")

    def _forget(self, job: Job, outcome: str) -> None:
        for i in range(job.n):
            self._generators.pop((id(job), i), None)
        self.counts[outcome] += 1

    def _fail_running(self, message: str) -> None:
        for job in {id(j): j for j, _ in self._running.values()}.values():
            job.sink(Delta(0, "", [], "error", error=message))
            self._forget(job, "failed")
        self._running.clear()
