"""Failed sign-ins back off per account and source, and per address, instead of locking.

An unknown name, a wrong password, an account backing off and an address backing off
answer alike and spend the same password-hash work (counted, not timed). An attacker's
failures from one address do not keep the owner out elsewhere; guesses spread over many
addresses keep it out no longer than the cap; one address cannot hammer; the setting
``login_throttle: lock`` brings the old hard lock back.

"Time passes" by moving the stored end of a wait back, so no test sleeps. Each client
comes from an address of its own (the back-off of an address outlives a test).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from appliance.auth import passwords
from appliance.auth.users import get_user
from appliance.models import AuditEvent
from appliance.portal.app import create_app
from appliance.portal.auth import INVALID_LOGIN
from appliance.services import Services
from tests.conftest import unique
from tests.portal.helpers import PASSWORD, code, csrf_token, enrol_totp, login, make_user

THRESHOLD = 5  # the Settings page's default: failures before the back-off (or lock)
EVERYWHERE = THRESHOLD * 10  # failures from any sources that slow the account everywhere
CAP_S = 60  # login_backoff_max_s's default
WRONG = "not-the-password-1"


class CountingHasher:
    """argon2's hasher, counting the verifications (the slow part of a sign-in)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.verifications = 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        result: bool = self.real.verify(password_hash, password)
        return result

    def hash(self, password: str) -> str:
        result: str = self.real.hash(password)
        return result


@pytest.fixture()
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    return counting


def portal(services: Services, **settings: Any) -> Flask:
    changed = services.settings.model_copy(update=settings)
    return create_app(services=dataclasses.replace(services, settings=changed))


def address() -> str:
    """A random address of 198.18.0.0/15 (set aside for tests), one per client."""
    return str(ipaddress.IPv4Address(0xC612_0000 + secrets.randbelow(2**17)))


def client_from(app: Flask, source: str | None = None) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = source or address()
    return client


def answer(response: TestResponse, username: str) -> tuple[int, str]:
    """Status and page, less what differs by design (the typed name, the CSRF token)."""
    page = response.text.replace(username, "NAME")
    return response.status_code, re.sub(r'value="[^"]{20,}"', 'value="TOKEN"', page)


def _pair_rows(session: Any, username: str) -> list[Any]:
    from appliance.models import LoginThrottle

    user = get_user(session, username)
    prefix = f"user:{user.id}@"
    return list(
        session.scalars(select(LoginThrottle).where(LoginThrottle.source.startswith(prefix)))
    )


def locked_until(services: Services, username: str) -> datetime | None:
    """The end of the account's longest wait: everywhere, or from one source."""
    with services.db.session() as session:
        ends = [get_user(session, username).locked_until]
        ends += [row.blocked_until for row in _pair_rows(session, username)]
        return max((end for end in ends if end is not None), default=None)


def wait_s(services: Services, username: str) -> float:
    """How long the account must still wait, in seconds (0: it may try now)."""
    until = locked_until(services, username)
    return max(0.0, (until - datetime.now(UTC)).total_seconds()) if until else 0.0


def let_pass(services: Services, username: str, seconds: float) -> None:
    """Time passes for the account: its wait ends ``seconds`` sooner."""
    with services.db.session() as session:
        user = get_user(session, username)
        if user.locked_until is not None:
            user.locked_until -= timedelta(seconds=seconds)
        for row in _pair_rows(session, username):
            if row.blocked_until is not None:
                row.blocked_until -= timedelta(seconds=seconds)


def set_failures(
    services: Services, username: str, failures: int, client: FlaskClient | None = None
) -> None:
    """As if the account had had ``failures`` failed sign-ins in a row (a long attack):
    from the client's address, or (no client) counted everywhere."""
    from appliance.auth.throttle import pair_key
    from appliance.models import LoginThrottle

    with services.db.session() as session:
        user = get_user(session, username)
        if client is None:
            user.failed_logins = failures
            return
        key = pair_key(user, client.environ_base["REMOTE_ADDR"])
        row = session.get(LoginThrottle, key) or LoginThrottle(source=key)
        row.failures, row.blocked_until = failures, None
        row.last_failure_at = datetime.now(UTC)
        session.add(row)


def set_source_failures(services: Services, source: str, failures: int) -> None:
    """As if ``source`` had failed ``failures`` times in a row, its last wait over."""
    from appliance.models import LoginThrottle

    with services.db.session() as session:
        row = session.get(LoginThrottle, source)
        assert row is not None
        row.failures, row.blocked_until = failures, None


def reasons(services: Services, username: str) -> list[tuple[str, dict[str, Any]]]:
    with services.db.session() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "auth.login.failed", AuditEvent.actor == username)
            .order_by(AuditEvent.seq)
        )
        return [(event.details["reason"], event.details) for event in events]


def sign_in_with_totp(client: FlaskClient, username: str, secret: str) -> TestResponse:
    response = login(client, username, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/login/totp", (
        "the password step was refused"
    )
    token = csrf_token(client.get("/login/totp").text)
    return client.post("/login/totp", data={"csrf_token": token, "code": code(secret)})


# Answers and work -----------------------------------------------------------------------


def test_unknown_wrong_throttled_and_inactive_answer_alike_with_one_hash_each(
    pg_services: Services, hasher: CountingHasher
) -> None:
    app = portal(pg_services)
    client = client_from(app)
    known = make_user(pg_services, ["developer"])
    answers = {}

    def attempt(label: str, username: str, password: str) -> None:
        before = hasher.verifications
        answers[label] = answer(login(client, username, password), username)
        assert hasher.verifications - before == 1, f"{label}: the password hash is always computed"

    attempt("wrong password", known, WRONG)
    attempt("unknown name", unique("nobody"), WRONG)
    set_failures(pg_services, known, THRESHOLD + 3, client)
    attempt("wrong, starts a back-off", known, WRONG)
    assert wait_s(pg_services, known) > 0
    attempt("right password while backing off", known, PASSWORD)
    inactive = make_user(pg_services, ["developer"])
    with pg_services.db.session() as session:
        get_user(session, inactive).is_active = False
    attempt("inactive", inactive, PASSWORD)

    status, page = answers["wrong password"]
    assert status == 200 and INVALID_LOGIN in page
    assert all(each == answers["wrong password"] for each in answers.values()), answers.keys()
    got = [reason for reason, _ in reasons(pg_services, known)]
    assert got == ["invalid_credentials", "invalid_credentials", "throttled"]


def test_the_back_off_doubles_up_to_the_cap_and_a_refusal_does_not_extend_it(
    pg_services: Services,
) -> None:
    client = client_from(portal(pg_services))
    username = make_user(pg_services, ["developer"])
    for _ in range(THRESHOLD - 1):
        assert INVALID_LOGIN in login(client, username, WRONG).text
    assert locked_until(pg_services, username) is None  # free attempts
    waits = []
    for _ in range(8):
        assert INVALID_LOGIN in login(client, username, WRONG).text
        waits.append(wait_s(pg_services, username))
        let_pass(pg_services, username, waits[-1] + 1)
    expected = [1, 2, 4, 8, 16, 32, 60, 60]
    assert all(want - 3 < got <= want for got, want in zip(waits, expected, strict=True)), waits

    # Trying during the wait, even with the right password, neither gets in nor waits longer.
    login(client, username, WRONG)
    until = locked_until(pg_services, username)
    for password in (WRONG, PASSWORD):
        assert INVALID_LOGIN in login(client, username, password).text
    assert locked_until(pg_services, username) == until
    (*_, last) = reasons(pg_services, username)
    assert last[0] == "throttled"
    failures = [details for reason, details in reasons(pg_services, username)]
    assert failures[THRESHOLD - 1]["backoff_s"] == 1


def test_an_attackers_failures_do_not_keep_the_owner_out(pg_services: Services) -> None:
    """The outside test's finding: six wrong passwords from one address kept the owner out
    from another. Now the attacker's address backs off; the owner signs in at once."""
    app = portal(pg_services)
    attacker = client_from(app)
    admin = make_user(pg_services, ["admin"])
    secret = enrol_totp(pg_services, admin)
    for _ in range(THRESHOLD + 1):
        assert INVALID_LOGIN in login(attacker, admin, WRONG).text
    set_failures(pg_services, admin, 40, attacker)  # hours of guessing from there
    assert INVALID_LOGIN in login(attacker, admin, WRONG).text
    assert 0 < wait_s(pg_services, admin) <= CAP_S
    assert INVALID_LOGIN in login(attacker, admin, PASSWORD).text  # no faster from there

    owner = client_from(app)
    response = sign_in_with_totp(owner, admin, secret)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert owner.get("/users").status_code == 200


def test_guesses_from_many_addresses_keep_the_owner_out_no_longer_than_the_cap(
    pg_services: Services,
) -> None:
    app = portal(pg_services)
    admin = make_user(pg_services, ["admin"])
    secret = enrol_totp(pg_services, admin)
    set_failures(pg_services, admin, EVERYWHERE + 40)  # a long attack from everywhere
    assert INVALID_LOGIN in login(client_from(app), admin, WRONG).text
    assert 0 < wait_s(pg_services, admin) <= CAP_S

    # The admin, elsewhere, is refused only until the cap has passed.
    owner = client_from(app)
    assert INVALID_LOGIN in login(owner, admin, PASSWORD).text
    let_pass(pg_services, admin, CAP_S)
    response = sign_in_with_totp(owner, admin, secret)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert owner.get("/users").status_code == 200
    with pg_services.db.session() as session:
        user = get_user(session, admin)
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_one_address_cannot_hammer_but_others_are_not_held_up(pg_services: Services) -> None:
    app = portal(pg_services, login_source_threshold=3, login_source_backoff_max_s=300)
    source = address()
    attacker = client_from(app, source)
    for _ in range(3):  # names that do not exist: no account counts them
        assert INVALID_LOGIN in login(attacker, unique("guess"), WRONG).text
    with pg_services.db.session() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "auth.login.failed", AuditEvent.source_ip == source)
            .order_by(AuditEvent.seq)
        )
        assert [event.details.get("source_backoff_s") for event in events] == [None, None, 1]

    # After a long run of guesses the address waits minutes: even its own account's right
    # password is refused, while from another address that account signs in at once.
    own = make_user(pg_services, ["developer"])
    set_source_failures(pg_services, source, 40)
    assert INVALID_LOGIN in login(attacker, unique("guess"), WRONG).text
    with pg_services.db.session() as session:
        (wait,) = session.scalars(
            select(AuditEvent.details["source_backoff_s"].as_integer())
            .where(AuditEvent.source_ip == source)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    assert wait == 300  # the cap
    assert INVALID_LOGIN in login(attacker, own, PASSWORD).text
    assert login(client_from(app), own, PASSWORD).status_code == 302
    assert [reason for reason, _ in reasons(pg_services, own)] == ["source_throttled"]


def test_the_lock_setting_restores_the_hard_lock(
    pg_services: Services, hasher: CountingHasher
) -> None:
    locking = client_from(portal(pg_services, login_throttle="lock"))
    throttling = client_from(portal(pg_services))
    locked, backing_off = make_user(pg_services, ["admin"]), make_user(pg_services, ["admin"])
    for _ in range(THRESHOLD):
        login(locking, locked, WRONG)
        login(throttling, backing_off, WRONG)
    # lock: 15 minutes (the Settings page's lockout length), audited as a lockout.
    assert 14 * 60 < wait_s(pg_services, locked) <= 15 * 60
    assert wait_s(pg_services, backing_off) <= 1
    with pg_services.db.session() as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.target == locked)))
    assert "auth.login.locked" in actions
    # The right password is refused, after the same hash work as any attempt.
    before = hasher.verifications
    response = login(locking, locked, PASSWORD)
    assert response.status_code == 200 and INVALID_LOGIN in response.text
    assert hasher.verifications == before + 1
    let_pass(pg_services, locked, CAP_S + 1)
    assert INVALID_LOGIN in login(locking, locked, PASSWORD).text  # still locked
    assert reasons(pg_services, locked)[-1][0] == "locked"


def test_parallel_guesses_do_not_slip_through_between_two_failures(
    pg_services: Services,
) -> None:
    """The account's row is locked from the check to the count: of guesses sent at once
    when a wait has just ended, one is judged, the rest find the new wait."""
    app = portal(pg_services)
    username = make_user(pg_services, ["developer"])
    set_failures(pg_services, username, EVERYWHERE + 10)
    clients = [client_from(app) for _ in range(4)]
    tokens = [csrf_token(client.get("/login").text) for client in clients]
    start = threading.Barrier(len(clients))

    def guess(index: int) -> None:
        start.wait()
        data = {"csrf_token": tokens[index], "username": username, "password": WRONG}
        assert INVALID_LOGIN in clients[index].post("/login", data=data).text

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    got = sorted(reason for reason, _ in reasons(pg_services, username))
    assert got == ["invalid_credentials", "throttled", "throttled", "throttled"]
    with pg_services.db.session() as session:
        assert get_user(session, username).failed_logins == EVERYWHERE + 11


def test_what_one_source_is() -> None:
    from appliance.auth.throttle import source_key

    assert source_key("203.0.113.7") == "203.0.113.7"
    assert source_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_key("2001:db8:1:2:3:4:5:6") == source_key("2001:db8:1:2:ffff::1")
    assert source_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    # Loopback is this machine or a proxy whose hops are not configured: not one source.
    for unknown in ("127.0.0.1", "::1", None, "", "not-an-address"):
        assert source_key(unknown) is None


def test_wrong_totp_codes_back_off_like_wrong_passwords(pg_services: Services) -> None:
    client = client_from(portal(pg_services))
    username = make_user(pg_services, ["admin"])
    secret = enrol_totp(pg_services, username)
    assert login(client, username, PASSWORD).headers["Location"] == "/login/totp"
    token = csrf_token(client.get("/login/totp").text)

    def send(totp_code: str) -> TestResponse:
        return client.post("/login/totp", data={"csrf_token": token, "code": totp_code})

    set_failures(pg_services, username, THRESHOLD + 4)  # codes guessed before
    assert "That code is not valid" in send("123456").text
    assert 16 < wait_s(pg_services, username) <= 32
    # The right code during the wait is refused (not even checked), the login stays pending.
    assert "That code is not valid" in send(code(secret)).text
    let_pass(pg_services, username, 33)
    response = send(code(secret))
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert [reason for reason, _ in reasons(pg_services, username)] == ["invalid_totp", "throttled"]
