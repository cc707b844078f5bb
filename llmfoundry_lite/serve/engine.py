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
import time
from collections import Counter, deque
from contextlib import nullcontext

import torch
from tokenizers import Tokenizer

from llmfoundry_lite.eval.generation import eos_id_of
from llmfoundry_lite.models.generate import _pick
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.serve.adapters import MultiLora
from llmfoundry_lite.serve.choice import Choice, Delta, Score, decode_table, token_pieces
from llmfoundry_lite.serve.job import EngineBusy, EngineDead, Job
from llmfoundry_lite.serve.slots import SlotCache, decode, prefill, verify
from llmfoundry_lite.serve.speculate import NgramDrafter, Speculation

log = logging.getLogger(__name__)


class ContinuousEngine:
    """Runs ``Job``s on ``model`` with up to ``max_batch`` choices decoded together."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, max_batch: int, max_waiting: int,
                 speculation: Speculation | None = None, adapters: MultiLora | None = None) -> None:
        self.model = model.eval()
        self.max_seq_len = model.cfg.max_seq_len
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.eos_id = eos_id_of(tokenizer)
        self.device = next(model.parameters()).device
        self._table = decode_table(tokenizer)
        self._pieces = token_pieces(tokenizer, self._table)
        self._cache = SlotCache(model, max_batch)
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: deque[Job] = deque()
        self._running: dict[int, tuple[Job, Choice]] = {}  # slot → its choice
        self._generators: dict[tuple[int, int], torch.Generator] = {}  # (id(job), choice) → seeded generator
        self.speculation = speculation
        """Prompt-lookup drafting of greedy choices (``speculate``); None decodes one token per step."""
        self._drafters: dict[int, tuple[Choice, NgramDrafter]] = {}  # slot → its greedy choice's n-gram index
        self.adapters = adapters
        """LoRA adapters installed on ``model`` (``adapters``): each slot's choice runs on its job's."""
        self.counts: Counter[str] = Counter()
        """Finished requests by outcome (``completed``, ``cancelled``, ``failed``), ``steps`` run, and
        with speculation the draft tokens proposed (``spec_drafted``) and kept (``spec_accepted``)."""
        self._closing = False
        self.died: str | None = None
        """Why the engine thread ended on an error; every job then fails and ``submit`` refuses."""
        self.last_progress = time.monotonic()
        """When the engine thread last finished a step or went idle (``health``'s stuck check)."""
        self._thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)
        self._thread.start()

    # ---- called from the server's threads -------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job``; raises ``EngineBusy`` when ``max_waiting`` requests already wait."""
        if self.died is not None:
            raise EngineDead(self.died)
        if self._inbox.qsize() + len(self._waiting) >= self.max_waiting:
            raise EngineBusy(f"{self.max_waiting} requests are already waiting")
        if job.adapter is not None and job.adapter not in (self.adapters.names if self.adapters else []):
            raise ValueError(f"adapter {job.adapter!r} is not served by this engine")
        self._inbox.put(job)

    def cancel(self, job: Job) -> None:
        """Stop ``job`` (its client left); its slots are freed before the next step."""
        job.cancelled = True

    def stats(self) -> dict[str, int]:
        return {"running": len(self._running), "waiting": len(self._waiting) + self._inbox.qsize(),
                "slots": self.max_batch, **self.counts}  # fmt: skip

    def health(self, stuck_after_s: float) -> str | None:
        """None when the engine thread is alive and stepping; else why not. Stuck means work is
        queued or running but no step has finished for ``stuck_after_s`` seconds."""
        if self.died is not None or not self._thread.is_alive():
            return f"engine thread ended: {self.died or 'stopped'}"
        busy = bool(self._running or self._waiting or self._inbox.qsize())
        idle_s = time.monotonic() - self.last_progress
        return f"engine busy but no step finished for {idle_s:.1f} s" if busy and idle_s > stuck_after_s else None

    def close(self) -> None:
        self._closing = True
        self._inbox.put(None)
        self._thread.join(timeout=10)

    # ---- the engine thread ----------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._steps()
        except BaseException as err:  # noqa: BLE001 — the thread is ending: no job may wait forever
            log.exception("engine thread died")
            self._die(f"{type(err).__name__}: {err}")

    def _die(self, message: str) -> None:
        self.died = message
        jobs = {id(j): j for j, _ in self._running.values()}
        jobs.update((id(j), j) for j in self._waiting)
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                jobs[id(job)] = job
        self._running.clear()
        self._waiting.clear()
        for job in jobs.values():
            job.sink(Delta(0, "", [], "error", error=f"engine stopped: {message}"))
            self.counts["failed"] += 1

    def _steps(self) -> None:
        while not self._closing:
            self.last_progress = time.monotonic()
            self._take_new(block=not self._running and not self._waiting)
            self.last_progress = time.monotonic()  # waiting for work is not being stuck
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
            for slot, choice in zip(slots, job.start(self._table, self.eos_id, self._pieces), strict=True):
                self._running[slot] = (job, choice)
                if self.adapters is not None:
                    self.adapters.assign(slot, self.adapters.index(job.adapter))
                if job.params.seed is not None:
                    gen = torch.Generator(device=self.device).manual_seed(job.params.seed + choice.index)
                    self._generators[(id(job), choice.index)] = gen
            admitted.append((job, slots))
        return admitted

    def _prefill(self, admitted: list[tuple[Job, list[int]]]) -> None:
        """Prefill the admitted prompts and pick each choice's first token. Echoed prompts run in a
        prefill of their own that keeps every position's logits (to score the prompt's tokens), so
        the others do not pay for (B, T, V) logits."""
        for echo in (False, True):
            group = [(job, slots) for job, slots in admitted if job.params.echo == echo]
            if not group:
                continue
            firsts = [slots[0] for _, slots in group]
            with self.adapters.slot_rows(firsts) if self.adapters is not None else nullcontext():
                logits = prefill(self.model, self._cache, [job.prompt_ids for job, _ in group], firsts,
                                 every_position=echo)  # fmt: skip
            for row, (job, slots) in enumerate(group):
                n = len(job.prompt_ids)
                for slot in slots[1:]:  # the other choices reuse the first one's prompt keys and values
                    self._cache.k[:, slot, :, :n] = self._cache.k[:, slots[0], :, :n]
                    self._cache.v[:, slot, :, :n] = self._cache.v[:, slots[0], :, :n]
                    self._cache.lengths[slot] = n
                if echo:
                    self._echo(job, slots, logits[row, :n])
                else:
                    for slot in slots:
                        self._advance(slot, logits[row : row + 1])

    def _echo(self, job: Job, slots: list[int], logits_TV: torch.Tensor) -> None:
        """Send each choice its prompt (with the prompt tokens' scores), then its first token unless
        ``max_tokens`` is 0."""
        k = job.params.logprobs
        scores = None if k is None else token_scores(logits_TV[:-1], job.prompt_ids[1:], k)
        for slot in slots:
            choice = self._running[slot][1]
            job.sink(choice.echo(job.prompt_ids, self._table, scores))
            if choice.finish_reason is None:
                self._advance(slot, logits_TV[-1:])
            else:
                self._release(slot)

    def _decode_step(self) -> None:
        drafts = self._drafts(self.speculation) if self.speculation is not None else {}
        if drafts:
            self._verify_step(drafts)
            return
        hi = max(self._running) + 1
        tokens = [self._running[s][1].tokens[-1] if s in self._running else None for s in range(hi)]
        logits_BV = decode(self.model, self._cache, tokens)
        self.counts["steps"] += 1
        greedy_B = logits_BV.argmax(dim=-1).tolist()  # one argmax and one copy for every greedy row
        for slot in sorted(self._running):
            self._advance(slot, logits_BV[slot : slot + 1], greedy_B[slot])

    def _drafts(self, spec: Speculation) -> dict[int, list[int]]:
        """Prompt-lookup guesses for every running greedy choice that has some (``speculate``), each
        short enough that the step can neither pass ``max_tokens`` nor write past the context."""
        for slot, (choice, _) in list(self._drafters.items()):
            if self._running.get(slot, (None, None))[1] is not choice:  # finished, cancelled or failed
                del self._drafters[slot]
        drafts = {}
        for slot, (job, choice) in self._running.items():
            if job.params.temperature > 0.0:
                continue
            if slot not in self._drafters:
                self._drafters[slot] = (choice, NgramDrafter(spec, job.prompt_ids))
            drafter = self._drafters[slot][1]
            drafter.extend(choice.tokens[len(drafter.tokens) - len(job.prompt_ids) :])
            limit = min(spec.max_draft, choice.max_tokens - len(choice.tokens) - 1,
                        self.max_seq_len - 1 - self._cache.lengths[slot])  # fmt: skip
            if draft := drafter.draft(limit):
                drafts[slot] = draft
        return drafts

    def _verify_step(self, drafts: dict[int, list[int]]) -> None:
        """One forward over each running choice's last token plus its draft (none for sampled ones):
        push the argmax after each kept token, keep drafts while they equal it, as greedy would."""
        hi = max(self._running) + 1
        rows: list[list[int] | None] = [None] * hi
        for slot, (_, choice) in self._running.items():
            rows[slot] = [choice.tokens[-1], *drafts.get(slot, ())]
        logits_BTV = verify(self.model, self._cache, rows)
        self.counts["steps"] += 1
        greedy_BT = logits_BTV.argmax(dim=-1).tolist()
        for slot in sorted(self._running):
            draft, accepted = drafts.get(slot, []), 0
            for t, token in enumerate(greedy_BT[slot][: len(draft) + 1]):
                self._advance(slot, logits_BTV[slot, t : t + 1], token)
                hit = t < len(draft) and token == draft[t]  # the next row's input is this token: its logits hold
                accepted += hit
                if not hit or slot not in self._running:
                    break
            self._cache.lengths[slot] += 1 + accepted  # the fed last token and the drafts that were kept
            if draft:
                self._drafters[slot][1].kept(accepted, len(draft))
            self.counts["spec_drafted"] += len(draft)
            self.counts["spec_accepted"] += accepted

    def _advance(self, slot: int, logits_1V: torch.Tensor, greedy: int | None = None) -> None:
        """Sample the next token of the choice in ``slot``, report it, free the slot if it finished.
        ``greedy`` is the row's argmax when already computed for the whole batch."""
        job, choice = self._running[slot]
        if job.params.temperature <= 0.0 and greedy is not None:
            token = greedy  # what ``_pick`` returns at temperature 0
        else:
            gen = self._generators.get((id(job), choice.index))
            token = int(_pick(logits_1V, job.params.temperature, job.params.top_p, gen)[0])
        k = job.params.logprobs
        job.sink(choice.push(token, None if k is None else token_scores(logits_1V, [token], k)[0]))
        self._release(slot)

    def _release(self, slot: int) -> None:
        """Free ``slot`` if its choice has finished; the job is done when all its choices are."""
        job, choice = self._running[slot]
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


def token_scores(logits_TV: torch.Tensor, ids: list[int], k: int) -> list[Score]:
    """For each row, the log-probability of ``ids[t]`` and the ``k`` most likely (id, log-probability)
    under the model's raw distribution: temperature and top_p shape sampling, not the scores
    (OpenAI's convention). One float32 log-softmax per row, so a greedy token's score equals its
    top-1 entry exactly (lm-evaluation-harness's ``is_greedy`` compares them with ``==``)."""
    logp_TV = logits_TV.float().log_softmax(dim=-1)
    chosen = logp_TV.gather(1, torch.tensor(ids, dtype=torch.long, device=logp_TV.device)[:, None])[:, 0].tolist()
    top_val, top_idx = logp_TV.topk(k, dim=-1)
    return [(c, list(zip(i, v, strict=True))) for c, i, v in zip(chosen, top_idx.tolist(), top_val.tolist(),
                                                                  strict=True)]  # fmt: skip
