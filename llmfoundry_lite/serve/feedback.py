"""Completion telemetry and user feedback in the API: what each answered completion leaves in the
feedback store (``feedback_store``), and ``POST /v1/feedback``'s body.

A completion is recorded before its response is sent (the non-streamed body, a stream's
``[DONE]``), so a client that reads an id can always send feedback for it. The record holds counts,
timings, the variant and how it was chosen, the language and the user's id (the store keeps it
salted and hashed); texts — prompt, suffix, choices, an edit's kept text — only with
``--feedback-texts``, and then through the filter stage's PII scrub, as training data would be.
Writes run on worker threads: the event loop never waits for the database.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from llmfoundry_lite.filtering.pii import PIIConfig, scrub_pii
from llmfoundry_lite.serve.errors import APIError, field_error
from llmfoundry_lite.serve.feedback_store import (
    EVENTS,
    BadFeedback,
    CompletionRecord,
    FeedbackEvent,
    FeedbackStore,
    UnknownCompletion,
)

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
"""How often the retention purge runs while the server records (it runs at start-up too)."""
MAX_USER_CHARS = 256
"""A longer ``user`` is refused: it is an id, not content."""


class FeedbackRequest(BaseModel):
    """The body of ``POST /v1/feedback``: one event on one choice of a completion this server returned."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str
    """The completion's id (``cmpl-...``), as its response carried it."""
    index: int = 0
    """The choice the event is about."""
    event: str
    """``shown``, ``accepted``, ``rejected`` or ``edited``."""
    text: str | None = None
    """For ``edited``: the text the user kept in place of the suggestion."""
    user: str | None = None
    """The same opaque user id the completion request carried (stored hashed)."""


def parse_feedback(raw: bytes) -> FeedbackRequest:
    """The feedback body; malformed JSON, wrong types, unknown fields and bad values are 400s naming the field."""
    try:
        req = FeedbackRequest.model_validate_json(raw)
    except ValidationError as err:
        raise field_error(err, lambda p: f"unknown field {p!r}; feedback takes {sorted(FeedbackRequest.model_fields)}") from err
    if req.event not in EVENTS:
        raise APIError(400, f"event must be one of {list(EVENTS)}, got {req.event!r}", "event")
    if req.event == "edited" and req.text is None:
        raise APIError(400, "an edited event needs the text the user kept", "text")
    if req.event != "edited" and req.text is not None:
        raise APIError(400, f"text goes with edited events only, not {req.event!r}", "text")
    if req.user is not None and len(req.user) > MAX_USER_CHARS:
        raise APIError(400, f"user must be at most {MAX_USER_CHARS} characters", "user")
    return req


class FeedbackRecorder:
    """The server's side of the feedback store: records completions and events, scrubbing texts."""

    def __init__(self, store: FeedbackStore, record_texts: bool = False, pii: PIIConfig | None = None) -> None:
        self.store = store
        self.record_texts = record_texts
        """``--feedback-texts``: keep (scrubbed) prompt, suffix and choice texts, and edits' kept text."""
        self.pii = pii or PIIConfig()
        self._purged_at = time.monotonic()
        self._purge_lock = threading.Lock()
        self.failures = 0
        """Completions answered but not recorded (the store refused or failed); logged each time."""
        store.purge()

    def _scrub(self, text: str | None) -> str | None:
        return None if text is None or not self.record_texts else scrub_pii(text, self.pii)[0]

    def completion(self, record: CompletionRecord) -> None:
        """Record one answered completion (blocking: call from a worker thread), its texts scrubbed, or
        dropped without ``--feedback-texts``. A failing store is logged and counted, never turned into a
        failed completion: the user already has the answer."""
        record = dataclasses.replace(
            record, prompt_text=self._scrub(record.prompt_text), suffix_text=self._scrub(record.suffix_text),
            texts=tuple(self._scrub(t) or "" for t in record.texts) if self.record_texts and record.texts else None)
        try:
            self.store.record_completion(record)
        except (SQLAlchemyError, OSError):  # the database is down: the answer stands, the record is lost (counted)
            self.failures += 1
            log.exception("completion %s answered but not recorded in the feedback store", record.id)
        self._maybe_purge()

    def feedback(self, req: FeedbackRequest) -> bool:
        """Record one event (blocking); True if new, False if the same (id, choice, event) was already
        recorded. Unknown ids are 404s, bad choices 400s, both naming the field."""
        text = self._scrub(req.text)
        try:
            return self.store.record_feedback(FeedbackEvent(req.id, req.index, req.event, text, req.user))
        except UnknownCompletion as err:
            raise APIError(404, f"no completion {req.id!r} was recorded by this server's feedback store",
                           "id", "completion_not_found") from err  # fmt: skip
        except BadFeedback as err:  # the store names its field; the API calls the choice ``index``
            param = {"choice": "index", "completion_id": "id"}.get(err.field, err.field)
            raise APIError(400, str(err), param) from err

    def _maybe_purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._purged_at = time.monotonic()
            removed = self.store.purge()
            if removed:
                log.info("feedback store: removed %d records past the retention period", removed)
        finally:
            self._purge_lock.release()

