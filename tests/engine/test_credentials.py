"""The engine key (issue 18, item 6): the built-in engine answers nothing but /health
without the credential only the gateway and the fine-tune rollout hold, the gateway sends
it, a rotation takes effect without a restart, and the key never leaves its 0600 file
(never the command line).

The in-process tests serve ``create_app`` with the home's keys; the slow ones run the
engine exactly as ``appliance serve`` starts it (its ``process_specs``), under gunicorn.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from appliance.api.app import create_app as create_api
from appliance.bootstrap import init_home
from appliance.engine.adapters import LoraOptions
from appliance.engine.server import create_app as create_engine
from appliance.errors import VaultError
from appliance.models import AuditEvent, Upstream
from appliance.services import Services
from appliance.upstream.client import UpstreamClient
from appliance.upstream.credentials import UpstreamCredentials
from appliance.upstream.registry import add_model
from appliance.upstream.routes import Route
from appliance.vault.engine_key import EngineKeys, previous_path, rotate_engine_key
from tests import timing
from tests.api.conftest import new_caller
from tests.conftest import LiveServer, free_port, scratch_services, unique

pytestmark = pytest.mark.engine

MODEL = "tiny-guarded"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
# Every route of the engine but /health, with a body it would otherwise serve.
GUARDED = [
    ("POST", "/v1/completions", {"model": MODEL, "prompt": "Hello", "max_tokens": 4}),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/embeddings", {"model": MODEL, "input": "Hello"}),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "evil", "lora_path": "/tmp/evil"}),
    ("POST", "/v1/unload_lora_adapter", {"lora_name": "evil"}),
    ("GET", "/v1/models", None),
    ("POST", "/tokenize", {"model": MODEL, "prompt": "Hello"}),
    ("GET", "/v1/no-such-route", None),
]


@dataclass
class Home:
    services: Services
    engine: LiveServer  # the built-in engine with this home's keys
    api: LiveServer  # the gateway, its model MODEL upstream at the engine

    @property
    def key_path(self) -> Path:
        return self.services.settings.engine_key_path

    def key(self) -> str:
        return self.key_path.read_text(encoding="ascii").strip()


@pytest.fixture(scope="module")
def home(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    with scratch_services(tmp_path_factory.mktemp("credentials") / "home") as services:
        lora = LoraOptions(runtime_updates=True)
        keys = EngineKeys.from_settings(services.settings, create=False)
        engine = LiveServer(create_engine(tiny_model, MODEL, lora, keys))
        with services.db.session() as session:
            add_model(session, MODEL, upstream_urls=[engine.url], served_name=MODEL)
        api = LiveServer(create_api(services=services))
        try:
            yield Home(services, engine, api)
        finally:
            api.stop()
            engine.stop()


def call(
    base: str, method: str, path: str, body: object = None, key: str | None = None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.request(method, base + path, json=body, headers=headers, timeout=timing.scaled(60))


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert "engine key" in error["message"]


def wait_until(predicate: object, seconds: float = 10.0) -> None:
    deadline = timing.deadline(seconds)
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.1)


# ------------------------------------------------------------------ the engine


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=[p for _, p, _ in GUARDED])
def test_without_the_key_every_route_but_health_is_refused(
    home: Home, method: str, path: str, body: object
) -> None:
    assert_refused(call(home.engine.url, method, path, body))
    assert call(home.engine.url, "GET", "/health").status_code == 200  # liveness stays open


def test_a_wrong_or_malformed_key_is_refused(home: Home) -> None:
    key = home.key()
    for headers in (
        {"Authorization": "Bearer wrong-key-0123456789abcdef0123456789abcdef"},
        {"Authorization": key},  # no scheme
        {"Authorization": f"Basic {key}"},
        {"Authorization": f"bearer {key}"},  # vLLM compares 'Bearer <key>' exactly
        {"Authorization": f"Bearer {key}x"},
        {"X-Api-Key": key},
    ):
        assert_refused(call(home.engine.url, "POST", "/v1/chat/completions", CHAT, **headers))
    reply = call(home.engine.url, "POST", "/v1/chat/completions", CHAT, key=key)
    assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"


def test_a_refused_adapter_load_loads_nothing(home: Home, tmp_path: Path) -> None:
    refused = call(
        home.engine.url,
        "POST",
        "/v1/load_lora_adapter",
        {"lora_name": "evil", "lora_path": str(tmp_path)},
        key="not-the-key-0123456789abcdef0123456789",
    )
    assert_refused(refused)
    models = call(home.engine.url, "GET", "/v1/models", key=home.key()).json()["data"]
    assert [m["id"] for m in models] == [MODEL]


def test_the_gateway_sends_the_key_end_to_end(home: Home) -> None:
    assert_refused(call(home.engine.url, "POST", "/v1/chat/completions", CHAT))
    caller = new_caller(home.services)
    for path, body in (
        ("/v1/chat/completions", CHAT),
        ("/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 3}),
        ("/v1/embeddings", {"model": MODEL, "input": "Hi"}),
    ):
        reply = call(home.api.url, "POST", path, body, key=caller.key)
        assert reply.status_code == 200, (path, reply.text)
    ready = call(home.api.url, "GET", "/readyz").json()["checks"]["upstreams"]
    assert ready[MODEL] == "ok"


def test_rotation_refuses_the_old_key_after_its_grace_without_a_restart(home: Home) -> None:
    caller = new_caller(home.services)
    first = home.key()
    rotate_engine_key(home.key_path, grace_s=60)
    second = home.key()
    assert second != first
    chat = "/v1/chat/completions"
    # During the grace period both are accepted; the gateway sends the new one.
    assert call(home.engine.url, "POST", chat, CHAT, key=first).status_code == 200
    wait_until(lambda: call(home.engine.url, "POST", chat, CHAT, key=second).status_code == 200)
    assert call(home.api.url, "POST", chat, CHAT, key=caller.key).status_code == 200
    rotate_engine_key(home.key_path, grace_s=0)
    third = home.key()
    wait_until(lambda: call(home.engine.url, "POST", chat, CHAT, key=third).status_code == 200)
    for old in (first, second):
        assert_refused(call(home.engine.url, "POST", chat, CHAT, key=old))
    wait_until(lambda: call(home.api.url, "POST", chat, CHAT, key=caller.key).status_code == 200)
    assert not previous_path(home.key_path).exists()


@pytest.mark.slow  # two CLI subprocesses
def test_the_rotate_key_command_is_audited_and_says_what_restarts(home: Home) -> None:
    before = home.key()
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "engine", "rotate-key", "--grace-s", "0"],
        env=appliance_env(home.services.settings.home, home.services),
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    after = home.key()
    assert after != before and after not in done.stdout and before not in done.stdout
    assert "refused from now on" in done.stdout
    assert "no restart needed here" in done.stdout and "vLLM" in done.stdout
    chat = "/v1/chat/completions"
    wait_until(lambda: call(home.engine.url, "POST", chat, CHAT, key=after).status_code == 200)
    assert_refused(call(home.engine.url, "POST", chat, CHAT, key=before))
    with home.services.db.session() as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "admin.engine.key.rotate")
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert event is not None and event.target == str(home.key_path)
        text = json.dumps(event.details)
    assert before not in text and after not in text
    again = subprocess.run(
        [sys.executable, "-m", "appliance", "engine", "rotate-key", "--key-stdin"],
        input=after + "\n",
        env=appliance_env(home.services.settings.home, home.services),
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        check=False,
    )
    assert again.returncode == 0 and "nothing changed" in again.stdout


def appliance_env(home: Path, services: Services) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return env | {
        "APPLIANCE_HOME": str(home),
        "APPLIANCE_DATABASE_URL": services.settings.effective_database_url,
    }


# ------------------------------------------------------------------ the key file


def test_the_key_file_is_private_and_an_older_home_gets_one(home: Home) -> None:
    path = home.key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(home.key()) >= 32
    rotate_engine_key(path, grace_s=30)
    for file in (path, previous_path(path)):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    key = home.key()
    # A home initialised before engine keys existed: `appliance init` (or any first use)
    # makes one and leaves everything else as it was.
    path.unlink()
    previous_path(path).unlink()
    result = init_home(home.services)
    assert result.created_engine_key and result.admin_password is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and home.key() != key
    assert not init_home(home.services).created_engine_key  # kept from now on
    path.chmod(0o644)
    try:
        with pytest.raises(VaultError, match="accessible by group or others"):
            EngineKeys(path)
    finally:
        path.chmod(0o600)


def test_the_previous_key_is_accepted_only_during_its_grace(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "engine.key"
    wall = [1000.0]
    keys = EngineKeys(path, recheck_s=0, wall_clock=lambda: wall[0])
    old = keys.current()
    rotate_engine_key(path, grace_s=30, now=wall[0])
    new = keys.current()
    assert new != old and keys.accepts(new) and keys.accepts(old)
    wall[0] += 29
    assert keys.accepts(old) and keys.previous() == old
    wall[0] += 2
    assert not keys.accepts(old) and keys.previous() is None and keys.accepts(new)
    assert not keys.accepts("") and not keys.accepts_header(None)
    assert keys.accepts_header(f"Bearer {new}") and not keys.accepts_header(f"Token {new}")


# ------------------------------------------------------------------ other upstreams


def test_a_server_not_restarted_after_a_rotation_is_reached_during_the_grace(
    home: Home, tiny_model: Path, tmp_path: Path
) -> None:
    """vLLM reads its key once, at start: after a rotation the gateway sends the new key,
    and on its 401 the replaced one, while it is accepted."""
    path = tmp_path / "keys" / "engine.key"
    old = EngineKeys(path).current()
    stale = LiveServer(create_engine(tiny_model, MODEL, keys=EngineKeys(fixed=old)))
    client = UpstreamClient(
        5.0, 60.0, credentials=UpstreamCredentials(lambda: EngineKeys(path, recheck_s=0))
    )
    route = Route(MODEL, MODEL, (stale.url,))
    try:
        assert client.post_json(route, "/v1/chat/completions", CHAT)["object"] == "chat.completion"
        rotate_engine_key(path, grace_s=60)
        assert client.post_json(route, "/v1/chat/completions", CHAT)["object"] == "chat.completion"
        rotate_engine_key(path, grace_s=0)
        with pytest.raises(Exception, match="refused the gateway's credential") as refused:
            client.post_json(route, "/v1/chat/completions", CHAT)
        assert getattr(refused.value, "status", None) == 502  # the caller's key was fine
    finally:
        client.close()
        stale.stop()


def test_an_upstream_with_a_key_of_its_own_is_sent_that_key(home: Home, tiny_model: Path) -> None:
    own = "own-vllm-key-" + "9" * 40
    remote = LiveServer(create_engine(tiny_model, MODEL, keys=EngineKeys(fixed=own)))
    services = home.services
    name, unkeyed = unique("remote"), unique("remote-unkeyed")
    try:
        with services.db.session() as session:
            add_model(
                session,
                name,
                upstream_urls=[remote.url],
                served_name=MODEL,
                upstream_key=own,
                sealing_key=services.derived_key("upstream-credential"),
            )
            add_model(session, unkeyed, upstream_urls=[remote.url], served_name=MODEL)
        with services.db.session() as session:
            sealed = session.scalars(select(Upstream.credential).where(Upstream.url == remote.url))
            stored = [s for s in sealed if s]
        assert len(stored) == 1 and own not in stored[0]
        caller = new_caller(services)
        reply = call(
            home.api.url, "POST", "/v1/chat/completions", CHAT | {"model": name}, caller.key
        )
        assert reply.status_code == 200, reply.text
        # Sent the engine key, the remote server refuses: the caller sees a 502, not a 401.
        refused = call(
            home.api.url, "POST", "/v1/chat/completions", CHAT | {"model": unkeyed}, caller.key
        )
        assert refused.status_code == 502, refused.text
        assert "refused the gateway's credential" in refused.json()["error"]["message"]
    finally:
        remote.stop()


@pytest.mark.slow  # two CLI subprocesses
def test_model_add_keeps_an_upstreams_own_key_sealed_and_audits_no_key(home: Home) -> None:
    own = "cli-own-key-" + "7" * 40
    name = unique("cli-remote")
    env = appliance_env(home.services.settings.home, home.services)
    added = subprocess.run(
        [sys.executable, "-m", "appliance", "model", "add", name, "--upstream",
         "http://10.0.0.9:8200", "--upstream-key-file", "-"],
        input=own + "\n", env=env, capture_output=True, text=True, check=False,
        timeout=timing.scaled(60),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with home.services.db.session() as session:
        (sealed,) = session.scalars(
            select(Upstream.credential).where(Upstream.url == "http://10.0.0.9:8200")
        )
    assert sealed and own not in sealed
    reset = subprocess.run(
        [sys.executable, "-m", "appliance", "model", "upstream-key", name, "--engine-key"],
        env=env, capture_output=True, text=True, check=False, timeout=timing.scaled(60),
    )  # fmt: skip
    assert reset.returncode == 0 and "the engine key" in reset.stdout, reset.stderr
    with home.services.db.session() as session:
        (after,) = session.scalars(
            select(Upstream.credential).where(Upstream.url == "http://10.0.0.9:8200")
        )
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.target == name,
                AuditEvent.action.in_(["admin.model.add", "admin.model.upstream_key"]),
            )
        ).all()
    assert after is None
    assert [e.details["upstream_key"] for e in events] == ["own", "engine"]
    assert all(own not in json.dumps(e.details) for e in events)


# ------------------------------------------------------------------ as `appliance serve` runs it


@pytest.mark.slow  # a gunicorn engine in a subprocess (several seconds)
def test_the_engine_serve_starts_needs_the_key_binds_the_loopback_and_keeps_it_off_argv(
    tmp_path: Path, tiny_model: Path
) -> None:
    from appliance import serve
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "home")
    port = free_port()
    (spec,) = [
        s
        for s in serve.process_specs(settings, [("tiny", str(tiny_model), port)])
        if s.name == serve.engine_process("tiny")
    ]
    assert "--host" not in spec.argv  # the engine's default: 127.0.0.1
    EngineKeys.from_settings(settings)  # as run_embedded does before the first child
    key = settings.engine_key_path.read_text(encoding="ascii").strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_HOME"] = str(settings.home)
    log = (tmp_path / "engine.log").open("wb")
    process = subprocess.Popen(spec.argv, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = timing.deadline(120)
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=timing.scaled(2)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "engine.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.3)
        for method, path, body in GUARDED:
            assert_refused(call(base, method, path, body))
        ok = call(base, "POST", "/v1/chat/completions", CHAT | {"model": "tiny"}, key=key)
        assert ok.status_code == 200, ok.text
        assert listening_addresses(port) == {"127.0.0.1"}
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert key.encode() not in argv
        # A rotation reaches the running engine without a restart.
        rotate_engine_key(settings.engine_key_path, grace_s=0)
        new = settings.engine_key_path.read_text(encoding="ascii").strip()
        chat = "/v1/chat/completions"
        body = CHAT | {"model": "tiny"}
        wait_until(lambda: call(base, "POST", chat, body, key=new).status_code == 200)
        assert_refused(call(base, "POST", chat, body, key=key))
    finally:
        process.terminate()
        process.wait(timeout=timing.scaled(30))
        log.close()


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on ``port`` at (from /proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # LISTEN
                if width == 8:
                    found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add(f"ipv6:{address}")
    return found
