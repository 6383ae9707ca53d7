"""Portal sessions live on the server: every way a session ends also kills copies of its cookie.

Each test signs a user in, copies the session cookie into a fresh client (what a thief
would replay), checks that the copy works, ends the session one way, and checks that
the copy now gets the sign-in page. Only the HTTP surface and the audit trail are used
where possible, so the tests run unchanged against the old cookie-only sessions (and
fail there).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from appliance.auth.users import get_user, set_password
from appliance.models import AuditEvent
from appliance.portal.app import SESSION_COOKIE_NAME, create_app
from appliance.services import Services
from tests.conftest import unique
from tests.portal.helpers import PASSWORD, csrf_token, enrol_totp, login, make_user, sign_in

NEW_PASSWORD = "an entirely different passphrase"


@pytest.fixture()
def app(pg_services: Services) -> Flask:
    return create_app(services=pg_services)


@pytest.fixture()
def admin(app: Flask, pg_services: Services) -> FlaskClient:
    client = app.test_client()
    sign_in(client, pg_services, ["admin"])
    return client


def browser(app: Flask, user_agent: str = "pytest-browser") -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def signed_in(app: Flask, services: Services, username: str, agent: str = "b") -> FlaskClient:
    client = browser(app, agent)
    assert login(client, username, PASSWORD).status_code == 302
    return client


def stolen_copy(client: FlaskClient, app: Flask) -> FlaskClient:
    """A fresh client replaying ``client``'s session cookie, checked to work now."""
    cookie = client.get_cookie(SESSION_COOKIE_NAME)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE_NAME, cookie.value)
    assert thief.get("/account").status_code == 200, "the copied cookie should work at first"
    return thief


def cookie_value(client: FlaskClient) -> str:
    cookie = client.get_cookie(SESSION_COOKIE_NAME)
    assert cookie is not None
    return cookie.value


def session_id_of(page: str, user_agent: str) -> int:
    """The id of the session row whose browser is ``user_agent`` on a sessions list."""
    row = page.split(user_agent)[0].rsplit('data-session="', 1)[1]
    return int(row.split('"', 1)[0])


def assert_sign_in_page(client: FlaskClient) -> None:
    response = client.get("/account")
    assert response.status_code == 302, "the session should have ended"
    assert response.headers["Location"].startswith("/login")
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and 'name="password"' in page.text


def post_login(client: FlaskClient, username: str) -> TestResponse:
    """The login form posted while signed in (GET /login would just go home)."""
    token = csrf_token(client.get("/account").text)
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": PASSWORD}
    )


def user_id(services: Services, username: str) -> int:
    with services.db.session() as session:
        return get_user(session, username).id


def ended(services: Services, username: str) -> list[dict[str, Any]]:
    """The details of every auth.session.end event of ``username``'s sessions, in order."""
    with services.db.session() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "auth.session.end", AuditEvent.target == username)
            .order_by(AuditEvent.seq)
        )
        return [{"actor": event.actor, **event.details} for event in events]


def confirm(admin: FlaskClient, path: str) -> None:
    """An admin action: its confirmation page, then the POST it asks for."""
    page = admin.get(path)
    assert page.status_code == 200, path
    response = admin.post(path, data={"csrf_token": csrf_token(page.text)})
    assert response.status_code in {200, 302}, response.text


def live_sessions(services: Services, username: str) -> int:
    from appliance.models import PortalSession

    with services.db.session() as session:
        uid = get_user(session, username).id
        return len(session.scalars(select(PortalSession).where(PortalSession.user_id == uid)).all())


# Each way a session ends --------------------------------------------------------------


def test_logout_ends_the_session_for_a_copied_cookie(app: Flask, pg_services: Services) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username)
    thief = stolen_copy(client, app)
    response = client.post("/logout", data={"csrf_token": csrf_token(client.get("/account").text)})
    assert response.headers["Location"] == "/login"
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    assert live_sessions(pg_services, username) == 0


def test_password_change_ends_every_other_session_and_re_signs_this_one(
    app: Flask, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username, "laptop")
    other = signed_in(app, pg_services, username, "phone")
    thief = stolen_copy(client, app)
    token = csrf_token(client.get("/account").text)
    data = {"csrf_token": token, "current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    response = client.post("/account", data=data)
    assert response.status_code == 302
    # The browser that changed it stays signed in, under a new session id.
    page = client.get("/account")
    assert page.status_code == 200 and "1 other session(s) ended" in page.text
    assert cookie_value(client) != cookie_value(thief)
    assert_sign_in_page(thief)
    assert_sign_in_page(other)
    (event,) = ended(pg_services, username)
    assert (event["reason"], event["sessions"], event["actor"]) == ("password_change", 2, username)
    assert live_sessions(pg_services, username) == 1


def test_admin_password_reset_ends_the_sessions(
    app: Flask, admin: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username)
    thief = stolen_copy(client, app)
    confirm(admin, f"/users/{user_id(pg_services, username)}/reset-password")
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    (event,) = ended(pg_services, username)
    assert (event["reason"], event["sessions"]) == ("password_reset", 1)
    assert event["actor"] != username  # the admin


def test_admin_totp_reset_ends_the_sessions(
    app: Flask, admin: FlaskClient, pg_services: Services
) -> None:
    client = browser(app)
    username = sign_in(client, pg_services, ["admin"])  # with its authenticator
    thief = stolen_copy(client, app)
    confirm(admin, f"/users/{user_id(pg_services, username)}/reset-totp")
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    assert [event["reason"] for event in ended(pg_services, username)] == ["totp_reset"]


def test_deactivation_ends_the_sessions_for_good(
    app: Flask, admin: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["operator"])
    client = signed_in(app, pg_services, username)
    thief = stolen_copy(client, app)
    uid = user_id(pg_services, username)
    confirm(admin, f"/users/{uid}/deactivate")
    confirm(admin, f"/users/{uid}/activate")  # active again: the old sessions stay ended
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    assert [event["reason"] for event in ended(pg_services, username)] == ["deactivated"]
    assert signed_in(app, pg_services, username).get("/account").status_code == 200


def test_sign_out_everywhere_for_oneself(app: Flask, pg_services: Services) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username, "laptop")
    other = signed_in(app, pg_services, username, "phone")
    thief = stolen_copy(other, app)
    page = client.get("/account")
    assert 'data-testid="sign-out-everywhere"' in page.text
    response = client.post(
        "/account/sign-out-everywhere", data={"csrf_token": csrf_token(page.text)}
    )
    assert response.headers["Location"] == "/login"
    assert "You have signed out everywhere (2 session(s) ended)." in client.get("/login").text
    for each in (client, other, thief):
        assert_sign_in_page(each)
    (event,) = ended(pg_services, username)
    assert (event["reason"], event["sessions"], event["actor"]) == (
        "sign_out_everywhere",
        2,
        username,
    )


def test_admin_signs_a_user_out_everywhere(
    app: Flask, admin: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["auditor"])
    client = signed_in(app, pg_services, username, "laptop")
    thief = stolen_copy(signed_in(app, pg_services, username, "phone"), app)
    uid = user_id(pg_services, username)
    assert 'data-testid="sign-out-everywhere"' in admin.get(f"/users/{uid}").text
    confirm(admin, f"/users/{uid}/sign-out")
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    (event,) = ended(pg_services, username)
    assert (event["reason"], event["sessions"]) == ("sign_out_everywhere", 2)
    assert admin.get("/account").status_code == 200  # the admin's own session is untouched


def test_admin_sees_a_users_sessions_and_ends_one(
    app: Flask, admin: FlaskClient, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    laptop = signed_in(app, pg_services, username, "Laptop-Browser/1.0")
    phone = signed_in(app, pg_services, username, "Phone-Browser/2.0")
    uid = user_id(pg_services, username)
    page = admin.get(f"/users/{uid}")
    assert page.status_code == 200
    assert "Laptop-Browser/1.0" in page.text and "Phone-Browser/2.0" in page.text
    session_id = session_id_of(page.text, "Phone-Browser/2.0")
    response = admin.post(
        f"/users/{uid}/sessions/{session_id}/end", data={"csrf_token": csrf_token(page.text)}
    )
    assert response.status_code == 302
    assert_sign_in_page(phone)
    assert laptop.get("/account").status_code == 200
    assert "Phone-Browser/2.0" not in admin.get(f"/users/{uid}").text
    (event,) = ended(pg_services, username)
    assert (event["reason"], event["session_id"]) == ("ended_by_admin", session_id)
    # The laptop's session, asked for on another user's page, does not end.
    other_uid = user_id(pg_services, make_user(pg_services, ["developer"]))
    laptop_id = session_id_of(page.text, "Laptop-Browser/1.0")
    response = admin.post(
        f"/users/{other_uid}/sessions/{laptop_id}/end", data={"csrf_token": csrf_token(page.text)}
    )
    assert response.status_code == 302
    assert laptop.get("/account").status_code == 200


def test_ending_ones_own_other_session(app: Flask, pg_services: Services) -> None:
    username = make_user(pg_services, ["developer"])
    laptop = signed_in(app, pg_services, username, "Laptop-Browser/1.0")
    phone = signed_in(app, pg_services, username, "Phone-Browser/2.0")
    page = laptop.get("/account")
    assert "this session" in page.text and "Phone-Browser/2.0" in page.text
    session_id = session_id_of(page.text, "Phone-Browser/2.0")
    laptop.post(f"/account/sessions/{session_id}/end", data={"csrf_token": csrf_token(page.text)})
    assert_sign_in_page(phone)
    assert laptop.get("/account").status_code == 200
    assert [event["reason"] for event in ended(pg_services, username)] == ["ended_by_user"]


@pytest.mark.parametrize("change", ["password", "totp"])
def test_a_change_made_outside_the_portal_ends_the_session_at_its_next_request(
    app: Flask, pg_services: Services, change: str
) -> None:
    """The CLI (`appliance user reset-totp`) or a script changes the account directly."""
    client = browser(app)
    username = sign_in(client, pg_services, ["admin"])
    thief = stolen_copy(client, app)
    with pg_services.db.session() as session:
        user = get_user(session, username)
        if change == "password":
            set_password(user, NEW_PASSWORD)
        else:
            user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    assert_sign_in_page(thief)
    assert_sign_in_page(client)
    reason = "password_change" if change == "password" else "totp_reset"
    assert [event["reason"] for event in ended(pg_services, username)] == [reason]


def test_sso_sign_ins_use_the_same_sessions(
    app: Flask, pg_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.portal import sso

    subject = unique("sub")

    class FakeIdp:
        client_id = "portal"

        def authorize_access_token(self) -> dict[str, Any]:
            claims = {"sub": subject, "preferred_username": subject, "groups": ["developers"]}
            return {"userinfo": claims, "id_token": "header.claims.signature"}

        def load_server_metadata(self) -> dict[str, Any]:
            return {"issuer": "https://idp.example.test"}

    monkeypatch.setattr(sso, "_client", lambda: (FakeIdp(), "https://idp.example.test"))
    client = browser(app)
    response = client.get("/sso/callback?code=x&state=y")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    thief = stolen_copy(client, app)
    copy = stolen_copy(client, app)
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/account").text)})
    assert_sign_in_page(thief)

    # The session was a row like a local one's, with the ID token for the IdP's logout.
    from appliance.models import PortalSession, User

    assert_sign_in_page(copy)  # signed out with the rest; it signs in through the IdP again
    assert copy.get("/sso/callback?code=x&state=y").status_code == 302
    with pg_services.db.session() as session:
        user = session.scalar(select(User).where(User.sso_subject == subject))
        assert user is not None
        (row,) = session.scalars(select(PortalSession).where(PortalSession.user_id == user.id))
        assert (row.auth_source, row.mfa, row.id_token) == ("sso", "idp", "header.claims.signature")


# What the cookie and the table hold ----------------------------------------------------


def test_the_cookie_holds_only_a_token_and_the_table_only_its_hash(
    app: Flask, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username, "Agent/7")
    client.get("/account")
    with client.session_transaction() as session:
        assert set(session) <= {"sid", "csrf_token", "_flashes", "_permanent"}
        token = session["sid"]
    from appliance.models import PortalSession

    with pg_services.db.session() as db:
        (row,) = db.scalars(
            select(PortalSession).where(PortalSession.user_id == user_id(pg_services, username))
        )
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (row.auth_source, row.mfa, row.user_agent) == ("local", "none", "Agent/7")
        assert row.source_ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("ago", "reason", "message"),
    [
        ({"last_seen_at": timedelta(minutes=31)}, "idle", "Your session expired"),
        ({"created_at": timedelta(hours=12, seconds=5)}, "absolute", "maximum length"),
    ],
)
def test_expiry_ends_the_row_and_is_audited(
    app: Flask, pg_services: Services, ago: dict[str, timedelta], reason: str, message: str
) -> None:
    from sqlalchemy import update

    from appliance.models import PortalSession

    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username)
    thief = stolen_copy(client, app)
    uid = user_id(pg_services, username)
    with pg_services.db.session() as db:
        (row,) = db.scalars(select(PortalSession).where(PortalSession.user_id == uid))
        values = {column: getattr(row, column) - delta for column, delta in ago.items()}
        db.execute(update(PortalSession).where(PortalSession.id == row.id).values(**values))
    response = client.get("/account")
    assert response.headers["Location"].startswith("/login")
    assert message in client.get("/login").text
    assert live_sessions(pg_services, username) == 0
    assert_sign_in_page(thief)
    assert [event["reason"] for event in ended(pg_services, username)] == [reason]


def test_signing_in_again_in_the_same_browser_ends_the_previous_session(
    app: Flask, pg_services: Services
) -> None:
    username = make_user(pg_services, ["developer"])
    client = signed_in(app, pg_services, username)
    thief = stolen_copy(client, app)
    assert post_login(client, username).status_code == 302
    assert client.get("/account").status_code == 200
    assert_sign_in_page(thief)
    assert [event["reason"] for event in ended(pg_services, username)] == ["renewed"]


def test_totp_user_sign_in_renews_the_session(app: Flask, pg_services: Services) -> None:
    """The password step of a TOTP user also ends the browser's previous session."""
    username = make_user(pg_services, ["operator"])
    enrol_totp(pg_services, username)
    first = browser(app)
    other = make_user(pg_services, ["developer"])
    assert login(first, other, PASSWORD).status_code == 302
    thief = stolen_copy(first, app)
    response = post_login(first, username)
    assert response.headers["Location"] == "/login/totp"
    assert_sign_in_page(thief)
    assert [event["reason"] for event in ended(pg_services, other)] == ["renewed"]
