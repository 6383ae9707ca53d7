"""The one place where the API app turns failures into OpenAI-style JSON errors."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from appliance.errors import (
    ApplianceError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)

log = logging.getLogger(__name__)


def error_response(error: ApplianceError) -> tuple[Response, int]:
    response = jsonify(error.to_openai())
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after_s)
    return response, error.status


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _is_union_tag(part: str | int) -> bool:
    """pydantic names the member of a union it tried (``str``, ``list[int]``, a class)."""
    return isinstance(part, str) and (
        part in _TYPE_TAGS or "[" in part or part[:1].isupper() or part.startswith("literal")
    )


def describe_validation_error(exc: ValidationError) -> InvalidRequest:
    """A 400 naming the first invalid parameter (``param`` is its dotted path)."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part)) or "body"
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{field}'.", param=field)
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{field}': {message}.", param=field)


def _from_http_exception(exc: HTTPException) -> ApplianceError:
    if exc.code == 404:
        return NotFound(f"Invalid URL ({request.method} {request.path}).", code="unknown_url")
    if exc.code == 405:
        return MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}.")
    if exc.code == 413:
        limit = request.max_content_length
        return PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.")
    error = ApplianceError(exc.description or exc.name)
    error.status = exc.code or 500
    error.type = "invalid_request_error" if error.status < 500 else "internal_error"
    return error


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApplianceError)
    def _appliance_error(exc: ApplianceError) -> tuple[Response, int]:
        return error_response(exc)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> tuple[Response, int]:
        return error_response(describe_validation_error(exc))

    @app.errorhandler(HTTPException)
    def _http_exception(exc: HTTPException) -> tuple[Response, int]:
        return error_response(_from_http_exception(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ApplianceError("The server had an error while processing your request.")
        )
