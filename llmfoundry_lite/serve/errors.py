"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status.

Clients (the official ``openai`` package among them) read ``param`` to point at the field.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
               500: "server_error", 503: "server_error", 504: "server_error"}  # fmt: skip


class APIError(Exception):
    """A request the server answers with ``status`` and an OpenAI error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def field_error(err: ValidationError, unknown: Callable[[str | None], str]) -> APIError:
    """The 400 for a request body pydantic refused, naming its first bad field: ``unknown(field)`` is the
    message for a field the model does not have; a body that is not JSON gets code ``invalid_json``."""
    first = err.errors()[0]
    param = str(first["loc"][0]) if first["loc"] else None
    if first["type"] == "extra_forbidden":
        return APIError(400, unknown(param), param)
    if first["type"] == "json_invalid":
        return APIError(400, f"request body is not valid JSON: {first['msg']}", None, "invalid_json")
    return APIError(400, f"{param}: {first['msg']}", param)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}  # fmt: skip


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(error_body(err.status, err.message, err.param, err.code), status_code=err.status)


def install_error_handlers(app: FastAPI, on_error: Callable[[int, str | None], None] = lambda s, c: None) -> None:
    """Every error leaves as an OpenAI error body, including FastAPI's own 404/405 and validation
    errors; ``on_error(status, code)`` counts each one (``metrics``)."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        on_error(err.status, err.code)
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, err: HTTPException) -> JSONResponse:
        on_error(err.status_code, None)
        return JSONResponse(error_body(err.status_code, str(err.detail)), status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        on_error(400, None)
        return JSONResponse(error_body(400, f"{param}: {first['msg']}", param), status_code=400)
