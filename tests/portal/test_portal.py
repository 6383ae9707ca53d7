"""The portal through Flask's test client, on the session's real PostgreSQL database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from werkzeug.wrappers import Response

from appliance.auth.access import access_of, login_required, public
from appliance.auth.users import create_user, get_user
from appliance.db import Database
from appliance.errors import NotFound
from appliance.models import BUILTIN, OPENAI, AuditEvent, Model, ServiceHeartbeat, Upstream, utcnow
from appliance.portal import health
from appliance.portal.app import SESSION_COOKIE_NAME, create_app
from appliance.portal.auth import INVALID_LOGIN, safe_next
from appliance.services import Services
from tests.conftest import make_settings, unique
from tests.portal.helpers import PASSWORD, age_session, csrf_token, login, make_user, sign_in

CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
CHECKED = utcnow() - timedelta(seconds=30)
BACKGROUND = ["worker", "beat"]


@pytest.fixture()
def app(pg_services: Services) -> Flask:
    return create_app(services=pg_services)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE_NAME)
    return cookie.value if cookie else None


def events(services: Services, request_id: str) -> list[AuditEvent]:
    with services.db.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)))


def assert_security_headers(response: Response, *, hsts: bool = False) -> None:
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    assert ("Strict-Transport-Security" in response.headers) is hsts


def row(html: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(1)


# Login ------------------------------------------------------------------------------


def test_login_success_lands_on_home_with_healthy_database(
    client: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["operator"])
    response = login(client, username, PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    (event,) = events(pg_services, response.headers["X-Request-Id"])
    assert (event.action, event.outcome, event.actor) == ("auth.login", "success", username)

    home = client.get("/")
    assert home.status_code == 200
    assert f'<span data-testid="user">{username}</span>' in home.text
    assert '<span class="role">operator</span>' in home.text
    assert re.search(
        r'data-testid="database">\s*<span class="badge badge-ok" data-state="ok"', home.text
    )
    assert 'data-testid="logout"' in home.text


@pytest.mark.parametrize("known_user", [True, False])
def test_failed_login_is_generic_and_audited(
    client: FlaskClient, pg_services: Services, known_user: bool
) -> None:
    username = make_user(pg_services, ["auditor"]) if known_user else unique("nobody")
    response = login(client, username, "wrong-password-123")
    assert response.status_code == 200
    assert INVALID_LOGIN in response.text
    assert session_cookie(client) is not None
    with client.session_transaction() as session:
        assert "uid" not in session
    (event,) = events(pg_services, response.headers["X-Request-Id"])
    assert (event.action, event.outcome, event.actor) == ("auth.login.failed", "failure", username)
    assert event.url_path == "/login" and event.http_method == "POST"
    if known_user:
        with pg_services.db.session() as session:
            assert get_user(session, username).failed_logins == 1
    assert client.get("/").status_code == 302


def test_empty_form_shows_field_errors_without_audit(
    client: FlaskClient, pg_services: Services
) -> None:
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": token, "username": "", "password": ""})
    assert response.status_code == 200
    assert "This field is required." in response.text
    assert events(pg_services, response.headers["X-Request-Id"]) == []


def test_deactivated_user_cannot_log_in(client: FlaskClient, pg_services: Services) -> None:
    username = make_user(pg_services, ["operator"])
    with pg_services.db.session() as session:
        get_user(session, username).is_active = False
    response = login(client, username, PASSWORD)
    assert response.status_code == 200
    assert INVALID_LOGIN in response.text
    (event,) = events(pg_services, response.headers["X-Request-Id"])
    assert event.action == "auth.login.failed"


def test_deactivated_user_is_logged_out_on_next_request(
    client: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["operator"])
    assert login(client, username, PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    with pg_services.db.session() as session:
        get_user(session, username).is_active = False
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    with client.session_transaction() as session:
        assert "uid" not in session
    assert "Your session has ended" in client.get("/login").text


def test_login_redirects_to_a_safe_next_only(client: FlaskClient, pg_services: Services) -> None:
    username = make_user(pg_services, ["auditor"])
    response = client.get("/some/page?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/some/page?x%3D1"
    response = login(client, username, PASSWORD, path="/login?next=/some/page%3Fx%3D1")
    assert response.headers["Location"] == "/some/page?x=1"
    client.delete_cookie(SESSION_COOKIE_NAME)
    response = login(client, username, PASSWORD, path="/login?next=//evil.example/")
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/audit?page=2", "/audit?page=2"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("evil", "/"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_signed_in_user_visiting_login_goes_home(
    client: FlaskClient, pg_services: Services
) -> None:
    login(client, make_user(pg_services, ["developer"]), PASSWORD)
    response = client.get("/login")
    assert response.status_code == 302 and response.headers["Location"] == "/"


# Sessions and CSRF ------------------------------------------------------------------


def test_unauthenticated_requests_go_to_login(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/nowhere").headers["Location"] == "/login?next=/nowhere"
    assert client.post("/logout").status_code in {302, 400}
    assert client.get("/logout").headers["Location"].startswith("/login")
    with client.get("/static/portal.css") as css:  # closes the file it streams
        assert css.status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json == {"status": "ok"}


def test_post_without_csrf_token_is_a_400_page(client: FlaskClient, pg_services: Services) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "admin", "password": "x" * 12})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "The form has expired or did not come from this site." in response.text
    assert "Traceback" not in response.text
    assert_security_headers(response)
    assert events(pg_services, response.headers["X-Request-Id"]) == []


def test_cross_site_post_is_refused_even_with_a_token(client: FlaskClient) -> None:
    token = csrf_token(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": "admin", "password": "x" * 12},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 400


def test_session_cookie_flags(client: FlaskClient) -> None:
    cookie = client.get("/login").headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_secure_cookie_and_hsts_when_served_over_tls(pg_services: Services) -> None:
    settings = pg_services.settings.model_copy(update={"session_cookie_secure": True})
    services = Services(
        settings=settings, db=pg_services.db, rbac=pg_services.rbac, privacy=pg_services.privacy
    )
    client = create_app(services=services).test_client()
    response = client.get("/login", base_url="https://portal.example")
    assert "; Secure" in response.headers["Set-Cookie"]
    assert_security_headers(response, hsts=True)
    token = csrf_token(response.text)
    response = client.post(
        "/login",
        base_url="https://portal.example",
        data={
            "csrf_token": token,
            "username": make_user(pg_services, ["auditor"]),
            "password": PASSWORD,
        },
    )  # no Referer, as a browser under Referrer-Policy: no-referrer sends none
    assert response.status_code == 302
    assert "; Secure" in response.headers["Set-Cookie"]


def test_security_headers_on_every_response(client: FlaskClient, pg_services: Services) -> None:
    assert_security_headers(client.get("/login"))
    assert_security_headers(client.get("/"))
    assert_security_headers(client.get("/healthz"))
    with client.get("/static/portal.css") as css:
        assert_security_headers(css)
    sign_in(client, pg_services, ["admin"])
    assert_security_headers(client.get("/"))
    not_found = client.get("/no/such/page")
    assert not_found.status_code == 404
    assert "Page not found" in not_found.text
    assert_security_headers(not_found)
    assert client.get("/").headers["Cache-Control"] == "no-store"


def test_request_id_is_taken_when_sane_and_recorded(
    client: FlaskClient, pg_services: Services
) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc-123_x.y"}).headers["X-Request-Id"]
        == "abc-123_x.y"
    )
    for bad in ["short", "x" * 65, "has space in it", "<script>alert(1)</script>"]:
        echoed = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    rid = unique("req-login")
    token = csrf_token(client.get("/login").text)
    client.post(
        "/login",
        data={"csrf_token": token, "username": unique("ghost"), "password": "x" * 12},
        headers={"X-Request-Id": rid, "User-Agent": "pytest-agent"},
    )
    (event,) = events(pg_services, rid)
    assert event.user_agent == "pytest-agent"


def test_login_starts_a_new_session(client: FlaskClient, app: Flask, pg_services: Services) -> None:
    username = make_user(pg_services, ["auditor"])
    old_token = csrf_token(client.get("/login").text)
    with client.session_transaction() as session:
        session["planted"] = "by-an-attacker"
        session["sid"] = "fixed-session-id"
    before = session_cookie(client)
    response = login(client, username, PASSWORD)
    assert response.status_code == 302
    assert session_cookie(client) != before
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["sid"] != "fixed-session-id"
        assert "csrf_token" not in session
        assert session.permanent
    assert client.post("/logout", data={"csrf_token": old_token}).status_code == 400
    assert client.get("/").status_code == 200


def test_logout_needs_post_and_csrf_and_ends_the_session(
    client: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    login(client, username, PASSWORD)
    home = client.get("/")
    assert home.status_code == 200

    get = client.get("/logout")
    assert get.status_code == 405
    assert get.headers["Allow"] == "OPTIONS, POST"
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in

    response = client.post("/logout", data={"csrf_token": csrf_token(home.text)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    (event,) = events(pg_services, response.headers["X-Request-Id"])
    assert (event.action, event.actor) == ("auth.logout", username)
    with client.session_transaction() as session:
        assert "uid" not in session
    assert client.get("/").status_code == 302
    assert "You have signed out." in client.get("/login").text


def test_idle_session_expires(client: FlaskClient, pg_services: Services) -> None:
    login(client, make_user(pg_services, ["auditor"]), PASSWORD)
    idle = pg_services.settings.session_idle_timeout_min * 60
    age_session(client, pg_services, idle=timedelta(seconds=idle + 5))
    response = client.get("/")
    assert response.status_code == 302
    assert "Your session expired" in client.get("/login").text


def test_role_without_dashboard_permission_gets_403(
    client: FlaskClient, pg_services: Services
) -> None:
    login(client, make_user(pg_services, ["app"]), PASSWORD)
    response = client.get("/")
    assert response.status_code == 403
    assert "portal:dashboard:read" in response.text
    assert 'data-testid="logout"' in response.text
    assert_security_headers(response)


# Errors -----------------------------------------------------------------------------


def test_errors_render_pages_never_tracebacks(pg_services: Services) -> None:
    app = create_app(services=pg_services)

    @app.get("/boom")
    @public
    def boom() -> str:
        raise RuntimeError("secret internals")

    @app.get("/missing")
    @login_required
    def missing() -> str:
        raise NotFound("no such model 'x'")

    @app.get("/undeclared")
    def undeclared() -> str:
        return "should never be seen"

    client = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert response.headers["X-Request-Id"] in response.text
    assert_security_headers(response)
    assert client.get("/undeclared").status_code == 302
    sign_in(client, pg_services, ["admin"])
    response = client.get("/missing")
    assert response.status_code == 404 and "no such model" in response.text
    response = client.get("/undeclared")
    assert response.status_code == 403 and "should never be seen" not in response.text


def test_every_route_declares_its_access(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            assert access_of(app.view_functions[rule.endpoint]) is not None, rule.rule


# Home page health -------------------------------------------------------------------


@pytest.fixture()
def registered_model(pg_services: Services) -> Iterator[str]:
    """A model with three upstreams and one without any, and fresh/stale heartbeats.

    Removed afterwards, so that the worker's health task in later tests never probes
    these addresses (nothing listens on port 9, the discard port).
    """
    name = unique("model")
    stale = utcnow() - timedelta(seconds=pg_services.settings.worker_stale_after_s + 60)
    with pg_services.db.session() as session:
        model = Model(name=name, kind=OPENAI, served_name=name)
        model.upstreams = [
            Upstream(url="http://127.0.0.1:9/a", healthy=True, last_checked_at=CHECKED),
            Upstream(
                url="http://127.0.0.1:9/b",
                healthy=False,
                last_checked_at=CHECKED,
                last_error="connection refused",
            ),
            Upstream(url="http://127.0.0.1:9/c"),
        ]
        session.add(model)
        session.add(Model(name=f"{name}-bare", kind=BUILTIN, served_name=name))
        session.merge(ServiceHeartbeat(name="worker", last_seen=utcnow(), info={}))
        session.merge(ServiceHeartbeat(name="beat", last_seen=stale, info={}))
    yield name
    with pg_services.db.session() as session:
        session.execute(delete(Model).where(Model.name.in_([name, f"{name}-bare"])))
        session.execute(delete(ServiceHeartbeat).where(ServiceHeartbeat.name.in_(BACKGROUND)))


def test_home_shows_upstreams_and_background_services(
    client: FlaskClient, registered_model: str, pg_services: Services
) -> None:
    name = registered_model
    sign_in(client, pg_services, ["admin"])
    html = client.get("/").text
    rows = re.findall(rf'<tr data-model="{name}">(.*?)</tr>', html, re.S)
    assert len(rows) == 3
    assert "http://127.0.0.1:9/a" in rows[0] and 'data-state="yes"' in rows[0]
    assert CHECKED.strftime("%Y-%m-%d %H:%M:%S UTC") in rows[0]
    assert 'data-state="no"' in rows[1] and "connection refused" in rows[1]
    assert 'data-state="unknown"' in rows[2] and "never" in rows[2]
    assert "no upstream configured" in row(html, "data-model", f"{name}-bare")
    assert 'data-state="healthy"' in row(html, "data-service", "worker")
    assert 'data-state="stale"' in row(html, "data-service", "beat")


def test_home_on_a_fresh_embedded_appliance(sqlite_services: Services) -> None:
    with sqlite_services.db.session() as session:
        user, _ = create_user(session, unique("u"), ["auditor"], password=PASSWORD)
    client = create_app(services=sqlite_services).test_client()
    login(client, user.username, PASSWORD)
    html = client.get("/").text
    assert 'data-state="never seen"' in row(html, "data-service", "worker")
    assert 'data-state="never seen"' in row(html, "data-service", "beat")
    assert "No models are registered yet." in html


def test_requests_leave_no_database_connection_checked_out(
    app: Flask, pg_services: Services
) -> None:
    client = app.test_client()
    sign_in(client, pg_services, ["admin"])
    for path in ["/", "/", "/no/such/page", "/login"]:
        client.get(path)
    login(app.test_client(), unique("ghost"), "x" * 12)
    assert pg_services.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_unreachable_database_is_reported_not_raised(pg_services: Services, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:1/x")
    down = Database(settings)
    try:
        report = health.gather(down, down.sessionmaker(), stale_after_s=60)
        assert not report.database.ok
        assert report.database.error and "OperationalError" in report.database.error
        assert report.upstreams == [] and report.services == []

        services = Services(
            settings=pg_services.settings,
            db=down,
            rbac=pg_services.rbac,
            privacy=pg_services.privacy,
        )
        client = create_app(services=services).test_client()
        assert client.get("/healthz").status_code == 200  # liveness needs no database
        with client.session_transaction() as session:
            session["sid"] = "a-session-token-the-database-would-know"
        response = client.get("/")
        assert response.status_code == 503
        assert "The database is unreachable" in response.text
        assert_security_headers(response)
    finally:
        down.dispose()


def test_every_page_but_login_and_sso_sends_strangers_to_login(app: Flask) -> None:
    """The contract: unauthenticated requests go to the login page; headers on all."""
    from tests.test_rbac import route_calls

    open_to_all = {"auth.login", "auth.totp", "sso.login", "sso.callback", "main.healthz"}
    client = app.test_client()
    for endpoint, method, path in route_calls(app):
        response = client.open(path, method=method)
        assert_security_headers(response)
        if endpoint in open_to_all:
            assert response.status_code != 403, path
            continue
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/login"), (method, path)


def test_session_cookie_after_login_is_httponly_and_samesite(
    client: FlaskClient, pg_services: Services
) -> None:
    response = login(client, make_user(pg_services, ["auditor"]), PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
