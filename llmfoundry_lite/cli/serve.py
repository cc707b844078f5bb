"""``python scripts/serve.py --model PATH [--backend ours|ct2] [--port 8000] ...``: an OpenAI-style completions API.

Parses the flags (``serve/config.py``), builds the chosen backend (``serve/server.py``: the model is
loaded there) and runs uvicorn. A missing model path, a wrong ``--device`` or a path that is no
model of ours ends in one line before the server starts; once it runs, errors are the server's.
"""

from __future__ import annotations

import logging

from llmfoundry_lite.cli.common import user_errors
from llmfoundry_lite.serve.config import parse_args


def main(argv: list[str]) -> None:
    """Load the model into the chosen backend, then serve until interrupted."""
    cfg = parse_args(argv)  # a bad flag fails before torch and uvicorn load
    import uvicorn

    from llmfoundry_lite.serve.app import build_app
    from llmfoundry_lite.serve.server import BACKENDS

    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with user_errors(ValueError):  # pick_device's and the loaders' refusals name the flag or the path
        engine, served = BACKENDS[cfg.backend](cfg)
    uvicorn.run(build_app(engine, served), host=cfg.host, port=cfg.port, log_level=cfg.log_level)
