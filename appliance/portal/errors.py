"""Every failure the portal answers, rendered in one place as ``error.html``.

ApplianceError keeps its status and message; HTTP errors (400 with CSRF failures,
403, 404, 405, 413, ...) get a short explanation; anything else is logged with the
request id and answered 500 without details. Never a traceback.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, make_response, render_template
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from appliance.errors import ApplianceError
from appliance.portal.context import request_id

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    413: "Request too large",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}

MESSAGES = {
    400: "The request could not be understood.",
    403: "You do not have permission to open this page.",
    404: "There is no page at this address.",
    405: "This page does not accept that kind of request.",
    413: "The request is larger than the portal accepts.",
    500: "Something went wrong on our side. The request id below helps the administrator.",
}

CSRF_MESSAGE = (
    "The form has expired or did not come from this site. Go back, reload the page and try again."
)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(ApplianceError, handle_appliance_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(Exception, handle_unexpected)


def handle_csrf_error(exc: CSRFError) -> Response:
    log.info("CSRF check failed: %s (request %s)", exc.description, request_id())
    return render_error(400, CSRF_MESSAGE)


def handle_appliance_error(exc: ApplianceError) -> Response:
    if exc.status >= 500:
        log.error("request %s failed", request_id(), exc_info=exc)
    if exc.status == 500:
        return render_error(500)  # internal failures keep their message in the log
    return render_error(exc.status, exc.message)


def handle_http_exception(exc: HTTPException) -> Response | HTTPException:
    if exc.code is None or exc.code < 400:
        return exc  # redirects raised by routing pass through untouched
    response = render_error(exc.code, MESSAGES.get(exc.code) or exc.description)
    if exc.code == 405:
        response.headers["Allow"] = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
    return response


def handle_database_down(exc: OperationalError) -> Response:
    log.error("database unavailable during request %s", request_id(), exc_info=exc)
    return render_error(503, "The database is unreachable. Try again in a moment.")


def handle_unexpected(exc: Exception) -> Response:
    log.error("unhandled error in request %s", request_id(), exc_info=exc)
    return render_error(500)


def render_error(status: int, message: str | None = None) -> Response:
    title = TITLES.get(status, "Error")
    message = message or MESSAGES.get(status) or title
    try:
        body = render_template(
            "error.html", status=status, title=title, message=message, request_id=request_id()
        )
    except Exception:  # the page itself failed (a broken template): plain text still works
        log.exception("could not render the error page")
        body = f"{status} {title}\n{message}\nRequest id: {request_id()}\n"
        response = make_response(body, status)
        response.mimetype = "text/plain"
        return response
    return make_response(body, status)
