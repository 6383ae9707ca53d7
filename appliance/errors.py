"""The appliance's error hierarchy.

Every failure that reaches a client is one of these. Each app converts them to a
response in exactly one place (``appliance/api/errors.py`` renders OpenAI-style
JSON, the portal renders a page). Messages are written for the caller: they never
carry secrets, personal data or tracebacks.
"""

from __future__ import annotations

from typing import Any


class ApplianceError(Exception):
    """Base class: an HTTP status, an OpenAI error ``type`` and an optional ``code``."""

    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_openai(self) -> dict[str, Any]:
        """The body OpenAI's API returns for an error, which every OpenAI SDK parses."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(ApplianceError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(ApplianceError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ApplianceError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(ApplianceError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class MethodNotAllowed(ApplianceError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(ApplianceError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class Conflict(ApplianceError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RateLimited(ApplianceError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(ApplianceError):
    status = 503
    type = "service_unavailable"
    code = "upstream_unavailable"


class UpstreamError(ApplianceError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class ConfigError(ApplianceError):
    """A setting or policy is invalid; start-up stops with this message."""


class SetupError(ApplianceError):
    """The home directory is missing or incomplete (run `appliance init`)."""


class VaultError(ApplianceError):
    """A key or sealed file is missing, unreadable, too widely readable or tampered with."""


class PolicyError(ConfigError):
    """A policy file is invalid; the message names the file and line."""


class FinetuneError(ApplianceError):
    """A fine-tune cannot run on what it was given: no records, a LoRA target the model
    lacks, a directory that is not a model, checkpoints of another run."""

    status = 400
    type = "invalid_request_error"
    code = "finetune_invalid"


class UpstreamRejected(ApplianceError):
    """The upstream answered the request with a 4xx error: relayed with its own status."""

    def __init__(
        self, status: int, message: str, *, type_: str, param: str | None, code: str | None
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status
        self.type = type_
