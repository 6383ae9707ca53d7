"""The nginx role, run for real: ansible-playbook applies it to this machine into a temp
directory (no service, no root-owned paths), `nginx -t` checks what it wrote, and a real
nginx started on that configuration fronts two small real upstreams (API and portal).

Checked through the real TLS listener: TLS 1.3 only, the seeds' limits (10 r/s with a
burst of 20 per address, body cap), security headers, unbuffered server-sent events,
HTTP/1.1 keep-alive to the upstream, the portal bound to its own address only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import timing
from tests.conftest import free_port
from tests.deploy.test_deploy_files import ANSIBLE
from tests.deploy.tools import require

pytestmark = pytest.mark.slow

ROLE = ANSIBLE / "roles" / "nginx"
SERVER_NAME = "appliance.test"
# The portal's listener: another loopback address, standing in for the admin network.
ADMIN_ADDRESS = "127.0.0.2"
BODY_CAP = 1048576  # the role's default: the appliance's own appliance_max_body_bytes
RATE, BURST = 10, 20  # the role's defaults: the seeds' limit_req


# --- the upstreams ---------------------------------------------------------------------


@dataclass
class Upstream:
    name: str
    server: ThreadingHTTPServer
    release: threading.Event = field(default_factory=threading.Event)
    released_in_time: list[bool] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, like gunicorn: /echo (GET, POST) and /stream (SSE)."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _json(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # nginx must replace this with its own single copy.
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.end_headers()
        self.wfile.write(body)

    def _echo(self, body_bytes: int) -> None:
        upstream: Upstream = self.server.upstream
        upstream.client_ports.append(self.client_address[1])
        self._json(
            {
                "upstream": upstream.name,
                "path": self.path,
                "body_bytes": body_bytes,
                "http_version": self.request_version,
                "x_forwarded_for": self.headers.get("X-Forwarded-For"),
                "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                "host": self.headers.get("Host"),
            }
        )

    def do_GET(self) -> None:
        if self.path == "/stream":
            self._stream()
        else:
            self._echo(0)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = len(self.rfile.read(length))
        self._echo(received)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self) -> None:
        """One event, then wait until the client says it has it: a buffering proxy would
        hold that event back, and the wait would time out."""
        upstream: Upstream = self.server.upstream
        upstream.release.clear()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b'data: {"n": 1}\n\n')
        upstream.released_in_time.append(upstream.release.wait(timeout=timing.scaled(5)))
        self._chunk(b'data: {"n": 2}\n\n')
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def start_upstream(name: str) -> Upstream:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    upstream = Upstream(name, server)
    server.upstream = upstream  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name=f"upstream-{name}", daemon=True).start()
    return upstream


# --- the role, applied, and nginx running on what it wrote -------------------------------


@dataclass
class Gateway:
    root: Path
    second_run: subprocess.Popen[str]  # the role again, started once nginx is up
    conf: Path
    certificate: Path
    port: int
    portal_port: int
    http_port: int
    api: Upstream
    portal: Upstream


def run_role(command: list[str]) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timing.scaled(120), check=False
    )
    assert result.returncode == 0, f"the role failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    nginx = require("nginx")
    playbook_bin = require("ansible-playbook", hint="install ansible-core (make .venv/.test)")
    root = tmp_path_factory.mktemp("nginx")
    api, portal = start_upstream("api"), start_upstream("portal")
    port, portal_port, http_port = free_port(), free_port(), free_port()
    variables = {
        "ansible_python_interpreter": str(Path(playbook_bin).parent / "python"),
        "nginx_install_package": False,
        "nginx_service_manage": False,
        "nginx_binary": nginx,
        "nginx_conf_dir": str(root / "etc"),
        "nginx_pid_file": str(root / "nginx.pid"),
        "nginx_log_dir": str(root / "log"),
        "nginx_temp_dir": str(root / "tmp"),
        "nginx_run_as": "root" if os.getuid() == 0 else "",
        "nginx_modules_include": "",
        "nginx_worker_processes": 1,
        "nginx_server_name": SERVER_NAME,
        "nginx_tls_selfsigned_sans": [f"DNS:{SERVER_NAME}", "IP:127.0.0.1", f"IP:{ADMIN_ADDRESS}"],
        "nginx_listen_address": "127.0.0.1",
        "nginx_listen_port": port,
        "nginx_redirect_http_port": http_port,
        "nginx_portal_listen_address": ADMIN_ADDRESS,
        "nginx_portal_listen_port": portal_port,
        # The role's default upstream ports follow the appliance role's variables.
        "appliance_api_port": api.port,
        "appliance_portal_port": portal.port,
    }
    (root / "vars.json").write_text(json.dumps(variables))
    (root / "play.yml").write_text(
        "- name: Apply the nginx role\n  hosts: localhost\n  connection: local\n"
        "  gather_facts: false\n  roles:\n    - role: nginx\n"
    )
    (root / "ansible.cfg").write_text(
        f"[defaults]\nroles_path = {ANSIBLE / 'roles'}\nhome = {root / 'ansible-home'}\n"
        f"local_tmp = {root / 'ansible-tmp'}\nretry_files_enabled = false\nnocows = true\n"
    )
    env_prefix = ["env", f"ANSIBLE_CONFIG={root / 'ansible.cfg'}"]
    playbook = [
        *env_prefix, playbook_bin, "-i", "localhost,", str(root / "play.yml"),
        "-e", f"@{root / 'vars.json'}",
    ]  # fmt: skip
    run_role(playbook)
    conf = root / "etc" / "nginx.conf"
    process = subprocess.Popen(
        [nginx, "-e", "stderr", "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    second_run = None
    try:
        _wait_listening(process, port)
        # The idempotence check runs alongside the other tests (which mostly wait).
        second_run = subprocess.Popen(
            playbook, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        yield Gateway(
            root=root,
            second_run=second_run,
            conf=conf,
            certificate=root / "etc" / "tls" / f"{SERVER_NAME}.crt",
            port=port,
            portal_port=portal_port,
            http_port=http_port,
            api=api,
            portal=portal,
        )
    finally:
        if second_run is not None:
            if second_run.poll() is None:
                second_run.kill()
            second_run.wait()
            if second_run.stdout is not None and not second_run.stdout.closed:
                second_run.stdout.close()
        process.send_signal(signal.SIGQUIT)  # graceful: let the workers finish
        try:
            process.wait(timeout=timing.scaled(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        for upstream in (api, portal):
            upstream.server.shutdown()
            upstream.server.server_close()


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = timing.deadline(15)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"nginx exited with {process.returncode}:\n{output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=timing.scaled(0.5)).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("nginx did not listen within 15 s")


def tls_context(gateway: Gateway) -> ssl.SSLContext:
    """A default client: offers TLS 1.2 and 1.3, trusts the generated certificate."""
    return ssl.create_default_context(cafile=str(gateway.certificate))


def connect(gateway: Gateway, host: str = "127.0.0.1", port: int | None = None):  # type: ignore[no-untyped-def]
    return http.client.HTTPSConnection(
        host, port or gateway.port, context=tls_context(gateway), timeout=timing.scaled(10)
    )


def get(gateway: Gateway, path: str, **kwargs: Any) -> tuple[http.client.HTTPResponse, bytes]:
    conn = connect(gateway, **kwargs)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def drain_rate_limit() -> None:
    """Wait until a full burst is allowed again (burst / rate seconds)."""
    time.sleep(BURST / RATE + 0.2)


# --- the role ------------------------------------------------------------------------------


def test_role_has_the_standard_shape_and_documented_prefixed_variables() -> None:
    for part in ("defaults", "tasks", "handlers", "meta", "vars"):
        assert (ROLE / part / "main.yml").is_file(), part
    assert {p.name for p in (ROLE / "templates").iterdir()} == {
        "nginx.conf.j2",
        "appliance.conf.j2",
    }
    lines = (ROLE / "defaults" / "main.yml").read_text(encoding="utf-8").splitlines()
    names = [m.group(1) for line in lines if (m := re.match(r"^(\w+):", line))]
    assert names and all(name.startswith("nginx_") for name in names)
    for i, line in enumerate(lines):
        if re.match(r"nginx_\w+:", line):
            assert any(p.startswith("#") for p in lines[max(0, i - 8) : i]), line
    defaults = set(names)
    for path in [*ROLE.glob("tasks/*.yml"), *ROLE.glob("templates/*.j2"), *ROLE.glob("*/main.yml")]:
        used = set(re.findall(r"(?<![\w.])nginx_\w+", path.read_text(encoding="utf-8")))
        assert used <= defaults, f"{path.name} uses undefined {sorted(used - defaults)}"
    text = (ROLE / "defaults" / "main.yml").read_text(encoding="utf-8")
    assert 'nginx_api_upstream_port: "{{ appliance_api_port | default(8000) }}"' in text
    assert 'nginx_portal_upstream_port: "{{ appliance_portal_port | default(8001) }}"' in text


def test_nginx_accepts_the_rendered_configuration(gateway: Gateway) -> None:
    result = subprocess.run(
        [require("nginx"), "-t", "-e", "stderr", "-c", str(gateway.conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    site = (gateway.root / "etc" / "conf.d" / "appliance.conf").read_text()
    assert f"server 127.0.0.1:{gateway.api.port} " in site  # appliance_api_port followed
    assert f"listen {ADMIN_ADDRESS}:{gateway.portal_port} ssl" in site
    key = gateway.root / "etc" / "tls" / f"{SERVER_NAME}.key"
    assert key.stat().st_mode & 0o077 == 0, "the generated key is readable by others"


# --- TLS -------------------------------------------------------------------------------------


def test_a_tls13_client_connects_and_verifies_the_generated_certificate(gateway: Gateway) -> None:
    with (
        socket.create_connection(("127.0.0.1", gateway.port), timeout=timing.scaled(5)) as raw,
        tls_context(gateway).wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        version, cipher = tls.version(), tls.cipher()
    print(f"TLS 1.3 client: negotiated {version} {cipher[0] if cipher else None}")
    assert version == "TLSv1.3"


@pytest.mark.parametrize("port_of", ["port", "portal_port"])
def test_a_tls12_only_client_is_refused(gateway: Gateway, port_of: str) -> None:
    port = getattr(gateway, port_of)
    host = ADMIN_ADDRESS if port_of == "portal_port" else "127.0.0.1"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((host, port), timeout=timing.scaled(5)) as raw,
        pytest.raises(ssl.SSLError) as refused,
    ):
        context.wrap_socket(raw, server_hostname=SERVER_NAME)
    print(f"TLS 1.2-only client on {port_of}: refused, {refused.value.reason}")
    assert refused.value.reason in {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"}


def test_plain_http_is_redirected_to_https(gateway: Gateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=timing.scaled(5))
    conn.request("GET", "/v1/models?x=1", headers={"Host": SERVER_NAME})
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == f"https://{SERVER_NAME}:{gateway.port}/v1/models?x=1"
    conn.close()


# --- proxying ---------------------------------------------------------------------------------


def test_security_headers_and_forwarding(gateway: Gateway) -> None:
    response, body = get(gateway, "/v1/models")
    assert response.status == 200
    echoed = json.loads(body)
    assert echoed["upstream"] == "api" and echoed["path"] == "/v1/models"
    assert echoed["x_forwarded_for"] == "127.0.0.1" and echoed["x_forwarded_proto"] == "https"
    assert echoed["http_version"] == "HTTP/1.1"
    headers = response.getheaders()
    hsts = [v for k, v in headers if k.lower() == "strict-transport-security"]
    assert len(hsts) == 1 and re.fullmatch(r"max-age=\d{8,}; includeSubDomains", hsts[0])
    assert [v for k, v in headers if k.lower() == "x-frame-options"] == ["DENY"]
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    assert "default-src 'none'" in (response.getheader("Content-Security-Policy") or "")
    assert response.getheader("Server") == "nginx"  # no version


def test_upstream_connections_are_kept_alive(gateway: Gateway) -> None:
    before = len(gateway.api.client_ports)
    for _ in range(8):
        response, _ = get(gateway, "/echo")  # a new client connection each time
        assert response.status == 200
    ports = gateway.api.client_ports[before:]
    assert len(ports) == 8
    assert len(set(ports)) <= 2, f"nginx opened {len(set(ports))} upstream connections for 8"


def test_server_sent_events_stream_through_unbuffered(gateway: Gateway) -> None:
    conn = connect(gateway)
    conn.request("GET", "/stream", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.readline() == b'data: {"n": 1}\n'  # before the upstream sends the rest
    gateway.api.release.set()
    rest = response.read()
    conn.close()
    assert rest == b'\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
    assert gateway.api.released_in_time[-1] is True, "the first event was held back"


def test_body_size_cap(gateway: Gateway) -> None:
    conn = connect(gateway)
    conn.request("POST", "/v1/chat/completions", body=b"x" * BODY_CAP)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["body_bytes"] == BODY_CAP
    # One byte more: refused from the Content-Length alone, before the body is read.
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("Content-Length", str(BODY_CAP + 1))
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413
    assert body["error"]["code"] == "request_too_large"
    assert response.getheader("Strict-Transport-Security")


def test_the_portal_has_its_own_listener_on_the_admin_address(gateway: Gateway) -> None:
    response, body = get(gateway, "/login", host=ADMIN_ADDRESS, port=gateway.portal_port)
    assert response.status == 200 and json.loads(body)["upstream"] == "portal"
    assert response.getheader("Strict-Transport-Security")
    assert response.getheader("X-Frame-Options") == "DENY"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(
            ("127.0.0.1", gateway.portal_port), timeout=timing.scaled(2)
        ).close()
    response, body = get(gateway, "/login")  # the API's listener never serves the portal
    assert json.loads(body)["upstream"] == "api"


# --- the rate limit (last: they use up the address's allowance) ---------------------------------


def test_the_allowed_rate_passes(gateway: Gateway) -> None:
    drain_rate_limit()
    conn = connect(gateway)
    statuses = []
    start = time.monotonic()
    for i in range(2 * RATE):  # two seconds at exactly the limit
        time.sleep(max(0.0, start + i / RATE - time.monotonic()))
        conn.request("GET", "/echo")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    print(f"at {RATE} r/s for 2 s: {statuses.count(200)} of {len(statuses)} passed")
    assert statuses == [200] * len(statuses)


def test_a_burst_over_the_limit_is_refused(gateway: Gateway) -> None:
    drain_rate_limit()
    conn = connect(gateway)
    statuses = []
    start = time.monotonic()
    first_refusal: dict[str, Any] = {}
    for _ in range(3 * BURST):
        conn.request("GET", "/echo")
        response = conn.getresponse()
        body = response.read()
        statuses.append(response.status)
        if response.status != 200 and not first_refusal:
            first_refusal = {"body": json.loads(body), "headers": dict(response.getheaders())}
    elapsed = time.monotonic() - start
    conn.close()
    passed, refused = statuses.count(200), statuses.count(429)
    print(
        f"burst of {len(statuses)} requests in {elapsed:.2f} s: {passed} passed, "
        f"{refused} refused with 429"
    )
    assert passed + refused == len(statuses)
    # The burst plus the first request pass at once; the bucket refills at RATE per second.
    assert BURST + 1 <= passed <= BURST + 1 + int(elapsed * RATE) + 1
    assert refused >= len(statuses) - passed
    assert statuses[: BURST + 1] == [200] * (BURST + 1)
    assert first_refusal["body"]["error"]["type"] == "rate_limit_error"
    headers = first_refusal["headers"]
    assert headers["Retry-After"] == "1" and headers["Content-Type"] == "application/json"
    assert headers["Strict-Transport-Security"] and headers["X-Frame-Options"] == "DENY"
    drain_rate_limit()


# --- idempotence (last: the second run started with nginx, alongside the tests above) ----


def test_a_second_run_changes_nothing(gateway: Gateway) -> None:
    output, _ = gateway.second_run.communicate(timeout=timing.scaled(120))
    assert gateway.second_run.returncode == 0, f"the second run failed:\n{output}"
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert recap is not None, output
    assert recap.group(1) == "0", output
