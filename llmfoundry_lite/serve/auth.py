"""Bearer-token authentication for every route but ``/health`` (``--api-key`` or ``$LLMFOUNDRY_API_KEY``).

A pure ASGI middleware, so it runs before routing and body parsing: a request without the key
costs one header comparison, whatever its path or size. The comparison is constant-time
(``hmac.compare_digest`` on bytes), and a refusal is a 401 in OpenAI's error shape with the
``WWW-Authenticate`` header RFC 6750 asks for.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from llmfoundry_lite.serve.errors import error_body

API_KEY_ENV = "LLMFOUNDRY_API_KEY"
OPEN_PATHS = frozenset({"/health"})
"""Paths served without a key: a liveness probe must not need a secret."""

log = logging.getLogger(__name__)


def resolve_api_key(flag: str | None) -> str | None:
    """``--api-key`` when given, else ``$LLMFOUNDRY_API_KEY``; None (no authentication) when neither is set."""
    key = flag if flag is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise ValueError(f"the API key (--api-key or ${API_KEY_ENV}) must not be empty")
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def warn_if_open(host: str, api_key: str | None) -> bool:
    """Log a warning when the API would listen beyond this machine without a key; True when it did."""
    if api_key is None and not is_loopback(host):
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model; "
                    "set --api-key or $%s", host, API_KEY_ENV)  # fmt: skip
        return True
    return False


class BearerAuth:
    """Refuses HTTP requests whose ``Authorization`` is not ``Bearer <key>`` (401), except ``OPEN_PATHS``."""

    def __init__(self, app: ASGIApp, api_key: str,
                 on_refuse: Callable[[int, str | None], None] = lambda s, c: None) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()
        self._on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        self._on_refuse(401, "invalid_api_key")
        why = "missing Authorization header" if not given else "invalid API key"
        body = json.dumps(error_body(401, f"{why}: send 'Authorization: Bearer <key>'", None,
                                     "invalid_api_key")).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="llmfoundry_lite"')]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
