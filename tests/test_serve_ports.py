"""`appliance serve` and `make run` refuse a taken port before starting anything, and count as
ready only the engines they started (another server answering on the port is not one)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask

from appliance import serve
from appliance.bootstrap import init_home
from appliance.engine.server import INSTANCE_ENV, INSTANCE_HEADER, init_instance_header
from appliance.errors import SetupError
from appliance.services import Services, build_services
from appliance.supervisor import ProcessSpec, Supervisor
from appliance.upstream.registry import add_model
from appliance.vault.engine_key import ensure_engine_key
from tests.conftest import free_port, make_settings

ENGINE_SETTING = "setting engine_base_port / APPLIANCE_ENGINE_BASE_PORT"


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another process would find taken: bound and listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def ports_env(ports: dict[str, int]) -> dict[str, str]:
    return {f"APPLIANCE_{name.upper()}": str(port) for name, port in ports.items()}


def free_ports() -> dict[str, int]:
    return {
        name: free_port()
        for name in ("api_port", "portal_port", "metrics_port", "engine_base_port")
    }


def home_with_a_builtin_model(home: Path) -> None:
    """An initialised home (SQLite) with one built-in model 'tiny' (never started here)."""
    services = build_services(make_settings(home))
    init_home(services)
    model_dir = home.parent / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    with services.db.session() as session:
        add_model(session, "tiny", path=model_dir)
    services.db.dispose()


def services_for(home: Path, ports: dict[str, int]) -> Services:
    return build_services(make_settings(home, **ports))


class NeverStarted(AssertionError):
    pass


@pytest.fixture()
def no_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Supervisor) -> None:
        raise NeverStarted("a process was started despite a taken port")

    monkeypatch.setattr(Supervisor, "start", refuse)


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ("api_port", "API, setting api_port / APPLIANCE_API_PORT"),
        ("portal_port", "portal, setting portal_port / APPLIANCE_PORTAL_PORT"),
        ("metrics_port", "API metrics, setting metrics_port / APPLIANCE_METRICS_PORT"),
        ("engine_base_port", f"engine of model 'tiny', {ENGINE_SETTING}"),
    ],
)
def test_each_taken_port_is_named_with_its_setting_and_nothing_starts(
    tmp_path: Path, no_start: None, taken: str, expected: str
) -> None:
    home = tmp_path / "home"
    home_with_a_builtin_model(home)
    with held_port() as port:
        ports = {**free_ports(), taken: port}
        services = services_for(home, ports)
        with pytest.raises(SetupError) as raised:
            serve.run_embedded(services, {}, echo=print)
        services.db.dispose()
    assert raised.value.message == (
        f"port {port} ({expected}) is already in use; nothing was started"
    )
    assert not list((home / "logs").glob("*.log"))  # no child was ever started


def test_a_port_given_on_the_command_line_names_the_option(tmp_path: Path, no_start: None) -> None:
    home = tmp_path / "home"
    home_with_a_builtin_model(home)
    with held_port() as port:
        services = services_for(home, {**free_ports(), "api_port": port})
        with pytest.raises(SetupError, match=rf"^port {port} \(API, option --api-port\) is"):
            serve.run_embedded(services, {"api_port": port}, echo=print)
        services.db.dispose()


def test_two_uses_of_one_port_are_refused(tmp_path: Path, no_start: None) -> None:
    home = tmp_path / "home"
    home_with_a_builtin_model(home)
    ports = free_ports()
    ports["engine_base_port"] = ports["api_port"]
    services = services_for(home, ports)
    with pytest.raises(SetupError) as raised:
        serve.run_embedded(services, {}, echo=print)
    services.db.dispose()
    assert raised.value.message == (
        f"port {ports['api_port']} (engine of model 'tiny', {ENGINE_SETTING}) is also the port "
        "of the API (setting api_port / APPLIANCE_API_PORT); nothing was started"
    )


def _cli_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return {**env, "APPLIANCE_HOME": str(home), **ports_env(ports)}


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "appliance", "serve"],
        ["-c", "from appliance.serve import preflight; preflight()"],  # what `make run` runs first
    ],
    ids=["appliance serve", "make run preflight"],
)
def test_the_command_exits_1_with_one_line_when_the_engine_port_is_taken(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "home"
    home_with_a_builtin_model(home)
    with held_port() as port:
        ports = {**free_ports(), "engine_base_port": port}
        result = subprocess.run(
            [sys.executable, *command],
            env=_cli_env(home, ports),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr == (
        f"error: port {port} (engine of model 'tiny', {ENGINE_SETTING}) is already in use; "
        "nothing was started\n"
    )
    assert not list((home / "logs").glob("*.log"))
    # The API's port was never taken by this run.
    assert serve.bind_failure("127.0.0.1", ports["api_port"]) is None


# ------------------------------------------------------------------ readiness


class _Answer200(BaseHTTPRequestHandler):
    """Any GET answers 200 with a JSON body, and the header ``header`` when set."""

    header: tuple[str, str] | None = None

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.header is not None:
            self.send_header(*self.header)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(header: tuple[str, str] | None = None) -> Iterator[int]:
    handler = type("Handler", (_Answer200,), {"header": header})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_foreign_server_answering_200_is_not_this_runs_engine() -> None:
    with http_server() as port:
        assert not serve.is_our_engine(port, "the-token")
    with http_server((INSTANCE_HEADER, "another-token")) as port:
        assert not serve.is_our_engine(port, "the-token")
    with http_server((INSTANCE_HEADER, "the-token")) as port:
        assert serve.is_our_engine(port, "the-token")
    assert not serve.is_our_engine(free_port(), "the-token")  # nobody listening


# A stand-in for the engine: serves /health with the instance token it was started with.
FAKE_ENGINE = f"""
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
token = os.environ["{INSTANCE_ENV}"]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("{INSTANCE_HEADER}", token)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_readiness_counts_the_engine_started_with_the_token_not_a_foreign_one(
    tmp_path: Path,
) -> None:
    ours = free_port()
    spec = ProcessSpec(
        "engine-ours",
        [sys.executable, "-c", FAKE_ENGINE, str(ours)],
        instance_token_env=INSTANCE_ENV,
    )
    supervisor = Supervisor([spec], tmp_path, dict(os.environ))
    supervisor.start()
    try:
        token = supervisor.tokens["engine-ours"]
        ready = serve.Check("ours", lambda: serve.is_our_engine(ours, token))
        assert serve.wait_until_ready(supervisor, [ready], timeout_s=30, poll_s=0.1) is None
        with http_server() as foreign:  # answers 200 on the engine's port, without the token
            check = serve.Check(
                f"engine of model 'tiny' on port {foreign}",
                lambda: serve.is_our_engine(foreign, token),
            )
            problem = serve.wait_until_ready(supervisor, [check], timeout_s=2, poll_s=0.1)
        assert problem is not None
        assert problem.startswith(f"engine of model 'tiny' on port {foreign} not ready after 2 s")
    finally:
        supervisor.stop()


def test_each_engine_gets_its_own_token_in_its_environment(tmp_path: Path) -> None:
    show = [sys.executable, "-c", f"import os; print(os.environ['{INSTANCE_ENV}'])"]
    supervisor = Supervisor(
        [
            ProcessSpec("a", show, instance_token_env=INSTANCE_ENV),
            ProcessSpec("b", show, instance_token_env=INSTANCE_ENV),
            ProcessSpec(
                "plain", [sys.executable, "-c", f"import os; print('{INSTANCE_ENV}' in os.environ)"]
            ),
        ],
        tmp_path,
        {k: v for k, v in os.environ.items() if k != INSTANCE_ENV},
    )
    supervisor.start()
    for child in supervisor.children.values():
        child.wait(timeout=30)
    a, b = supervisor.tokens["a"], supervisor.tokens["b"]
    assert a != b and len(a) >= 32
    assert (tmp_path / "a.log").read_text().strip() == a
    assert (tmp_path / "b.log").read_text().strip() == b
    assert (tmp_path / "plain.log").read_text().strip() == "False"
    assert "plain" not in supervisor.tokens


def test_a_child_that_dies_while_starting_is_reported_with_its_last_log_line(
    tmp_path: Path,
) -> None:
    dies = [
        sys.executable,
        "-c",
        "import sys; print('starting'); print('OSError: [Errno 98] Address in use'); sys.exit(3)",
    ]
    supervisor = Supervisor([ProcessSpec("engine-tiny", dies)], tmp_path, dict(os.environ))
    supervisor.start()
    try:
        never = serve.Check("never", lambda: False)
        problem = serve.wait_until_ready(supervisor, [never], timeout_s=30, poll_s=0.1)
    finally:
        supervisor.stop()
    assert problem == (
        "engine-tiny exited with code 3: OSError: [Errno 98] Address in use "
        f"(see {tmp_path / 'engine-tiny.log'})"
    )


def test_the_engine_app_returns_its_instance_token_in_every_response() -> None:
    app = Flask(__name__)
    app.get("/health")(lambda: {"status": "ok"})
    init_instance_header(app, "tok-123")
    client = app.test_client()
    assert client.get("/health").headers[INSTANCE_HEADER] == "tok-123"
    assert client.get("/missing").headers[INSTANCE_HEADER] == "tok-123"  # errors too
    bare = Flask(__name__)
    init_instance_header(bare, None)  # not started by `appliance serve`: no header
    bare.get("/health")(lambda: {"status": "ok"})
    assert INSTANCE_HEADER not in bare.test_client().get("/health").headers


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
@pytest.mark.engine
def test_the_engine_that_serve_starts_answers_with_its_token(
    tmp_path: Path, tiny_model: Path
) -> None:
    """The real thing: the engine spec `appliance serve` starts, under gunicorn."""
    port = free_port()
    settings = make_settings(tmp_path / "home")
    ensure_engine_key(settings.engine_key_path)  # run_embedded makes it before the engines
    specs = serve.process_specs(settings, [("tiny", str(tiny_model), port)])
    engine = next(spec for spec in specs if spec.name == serve.engine_process("tiny"))
    supervisor = Supervisor([engine], tmp_path, dict(os.environ))
    supervisor.start()
    try:
        checks = serve.readiness_checks(supervisor, settings, [("tiny", str(tiny_model), port)])
        problem = serve.wait_until_ready(supervisor, checks[:1], timeout_s=120, poll_s=0.2)
        assert problem is None, (tmp_path / "engine-tiny.log").read_text()[-2000:]
        assert not serve.is_our_engine(port, "a-token-of-another-run")
    finally:
        supervisor.stop()
