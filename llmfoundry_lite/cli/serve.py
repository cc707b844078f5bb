"""``python scripts/serve.py --model PATH [--backend ours|ct2] [--port 8000] ...``: an OpenAI-style completions API.

Parses the flags (``serve/config.py``), builds the chosen backend (``serve/server.py``: the model is
loaded there) and runs uvicorn. A missing model path, a wrong ``--device`` or a path that is no
model of ours ends in one line before the server starts; once it runs, errors are the server's.

The port opens once the model is loaded, so ``/ready`` answering 200 means loaded. SIGTERM (or
Ctrl-C) drains: ``/ready`` turns 503, uvicorn stops accepting connections, in-flight requests —
streams included — run to their end for up to ``--drain-timeout-s`` (uvicorn's
``timeout_graceful_shutdown``, which is unbounded unless set), then what is left is cancelled and
the process exits 0 (uvicorn would re-raise the signal: exit 143).
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.serve.config import parse_args

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    """Load the model into the chosen backend, then serve until SIGTERM/SIGINT, draining in-flight requests."""
    cfg = parse_args(argv)  # a bad flag fails before torch and uvicorn load
    import uvicorn

    from llmfoundry_lite.serve.app import build_app
    from llmfoundry_lite.serve.auth import resolve_api_key, warn_if_open
    from llmfoundry_lite.serve.server import BACKENDS, fetch_model

    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with user_errors(ValueError):  # pick_device's and the loaders' refusals name the flag or the path
        api_key = resolve_api_key(cfg.api_key)
        engine, served = BACKENDS[cfg.backend](fetch_model(cfg))
    warn_if_open(cfg.host, api_key)
    feedback = open_feedback(cfg)
    if cfg.ab and feedback is None:
        log.warning("--ab with --feedback-db none: the variants are served, but nothing records how they do")
    with user_errors(ValueError):  # an --ab variant this server does not serve
        app = build_app(engine, served, cfg.ops(api_key), feedback, cfg.split())

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not app.state.draining:
                log.info("signal %s: draining in-flight requests (up to %g s), then exiting", sig, cfg.drain_timeout_s)
            app.state.draining = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level,
                            timeout_graceful_shutdown=cfg.drain_timeout_s)  # fmt: skip
    for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn re-raises the signal it drained for, after
        signal.signal(sig, lambda *_: None)  # restoring these handlers: a finished drain then exits 0
    DrainingServer(config).run()
    close = getattr(engine, "close", None)
    if close is not None:
        close()
    if feedback is not None:
        feedback.store.close()


def open_feedback(cfg):  # -> FeedbackRecorder | None
    """``--log-dir``'s request log file, and the feedback store the server records into (None: ``--feedback-db none``)."""
    from llmfoundry_lite.serve.feedback import FeedbackRecorder
    from llmfoundry_lite.serve.feedback_store import FeedbackStore

    log_dir = Path(cfg.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "requests.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("llmfoundry_lite.serve.requests").addHandler(handler)
    url = cfg.feedback_url()
    if url is None:
        return None
    with user_errors(ValueError):
        store = FeedbackStore(url, cfg.feedback_retention_days or None)
    log.info("recording completions and feedback in %s%s", store_label(url),
             " (texts PII-scrubbed)" if cfg.feedback_texts else "")
    return FeedbackRecorder(store, cfg.feedback_texts)


def store_label(url: str) -> str:
    """``url`` without its password, for the log."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
