"""The keep-alive race: an upstream closes a pooled connection just as it is reused.

The upstream here is a small HTTP/1.1 server on raw sockets whose keep-alive ends the
way a real one's can: ``idle_close_s`` closes a kept-alive connection whose next request
arrives after it was idle that long, without reading the request (a keep-alive timer that
fires as the request comes in: its application never sees it); ``reset_after_answer``
resets the connection right after each answer. With one replica, the old gateway had
nowhere to retry and answered 503 ("no upstream could be reached").
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3.connectionpool

from appliance.errors import UpstreamUnavailable
from appliance.upstream.client import UpstreamClient
from appliance.upstream.routes import Route
from tests import timing
from tests.upstream.test_pool import chat_completion

CHAT = {"model": "served-m", "messages": [{"role": "user", "content": "hi"}]}


class KeepAliveServer:
    """An OpenAI-ish upstream whose kept-alive connections end as the test says."""

    def __init__(self, *, idle_close_s: float | None = None, reset_after_answer: bool = False):
        self.idle_close_s = idle_close_s
        self.reset_after_answer = reset_after_answer
        self.lock = threading.Lock()
        self.handled: list[str] = []  # the paths its application answered
        self.connections = 0
        self.closed_on_arrival = 0  # requests that came on a connection it timed out
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            pending = b""
            while True:
                idle_since = time.monotonic()
                if not pending:
                    select.select([conn], [], [], timing.scaled(30))
                    idle = time.monotonic() - idle_since
                    try:
                        if not conn.recv(1, socket.MSG_PEEK):
                            return  # the client closed it
                    except OSError:
                        return
                    if self.idle_close_s is not None and idle >= self.idle_close_s:
                        with self.lock:
                            self.closed_on_arrival += 1
                        return  # the request stays unread: the close resets the connection
                request, pending = self._read_request(conn, pending)
                if request is None:
                    return
                method, path, body = request
                with self.lock:
                    self.handled.append(path)
                conn.sendall(_answer(method, path, body))
                if self.reset_after_answer:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return

    @staticmethod
    def _read_request(
        conn: socket.socket, pending: bytes
    ) -> tuple[tuple[str, str, bytes] | None, bytes]:
        while b"\r\n\r\n" not in pending:
            data = conn.recv(65536)
            if not data:
                return None, b""
            pending += data
        head, _, rest = pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        return (method, path, rest[:length]), rest[length:]

    def count(self, path: str) -> int:
        with self.lock:
            return self.handled.count(path)

    def stop(self) -> None:
        self._stop = True
        self.listener.close()


def _answer(method: str, path: str, body: bytes) -> bytes:
    if path == "/v1/chat/completions":
        payload: Any = chat_completion(json.loads(body)["model"], "hi")
    elif path == "/tokenize":
        payload = {"count": 3}
    else:
        payload = {"status": "ok"}
    data = json.dumps(payload).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + data


@pytest.fixture()
def servers() -> Iterator[list[KeepAliveServer]]:
    made: list[KeepAliveServer] = []
    yield made
    for server in made:
        server.stop()


def serve(servers: list[KeepAliveServer], **behaviour: Any) -> KeepAliveServer:
    server = KeepAliveServer(**behaviour)
    servers.append(server)
    return server


@pytest.fixture()
def client() -> Iterator[UpstreamClient]:
    upstreams = UpstreamClient(2.0, 5.0)  # the default idle timeout: 1 s
    yield upstreams
    upstreams.close()


def one_replica(server: KeepAliveServer) -> Route:
    return Route("m", "served-m", (server.url,))


def chat(client: UpstreamClient, route: Route) -> str:
    return str(client.post_json(route, "/v1/chat/completions", CHAT)["choices"][0]["message"])


def test_a_connection_idle_past_the_idle_timeout_is_not_reused(
    client: UpstreamClient, servers: list[KeepAliveServer]
) -> None:
    # An upstream whose keep-alive (1.2 s) is above the gateway's idle timeout (1 s): a
    # connection idle 1.3 s is never reused, so the upstream's timer never beats a request.
    server = serve(servers, idle_close_s=1.2)
    route = one_replica(server)
    chat(client, route)
    time.sleep(1.3)
    chat(client, route)
    assert server.count("/v1/chat/completions") == 2
    assert server.closed_on_arrival == 0
    assert server.connections == 2


def test_a_request_that_was_never_written_is_sent_again_on_a_fresh_connection(
    client: UpstreamClient, servers: list[KeepAliveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream resets each connection after its answer; urllib3's check of a pooled
    # connection is made to pass, as when the reset arrives just after it: writing the
    # request then fails (urllib3 swallows that and raises RemoteDisconnected on reading).
    server = serve(servers, reset_after_answer=True)
    monkeypatch.setattr(urllib3.connectionpool, "is_connection_dropped", lambda conn: False)
    route = one_replica(server)
    chat(client, route)
    time.sleep(0.05)  # the reset has arrived
    chat(client, route)  # a chat completion, not idempotent: sent again, it never arrived
    assert server.count("/v1/chat/completions") == 2
    assert server.connections == 2
    assert client.replicas()[server.url].errors == 0


def test_an_idempotent_request_is_sent_again_after_a_connection_closed_unanswered(
    client: UpstreamClient, servers: list[KeepAliveServer]
) -> None:
    # The upstream's keep-alive (0.2 s) is below the idle timeout (1 s): a misconfiguration
    # the race is left to. /tokenize changes nothing upstream: it is sent again, anew.
    server = serve(servers, idle_close_s=0.2)
    route = one_replica(server)
    chat(client, route)
    time.sleep(0.3)
    assert client.count_tokens(route, {"prompt": "hello"}) == 3
    assert server.closed_on_arrival == 1
    assert server.count("/tokenize") == 1
    assert client.replicas()[server.url].errors == 0


def test_a_written_chat_completion_is_not_sent_to_the_same_replica_again(
    client: UpstreamClient, servers: list[KeepAliveServer]
) -> None:
    # The same race for a chat completion: the upstream may have started on it, so it is
    # not sent to that replica again (with another replica, it would go there).
    server = serve(servers, idle_close_s=0.2)
    route = one_replica(server)
    chat(client, route)
    time.sleep(0.3)
    with pytest.raises(UpstreamUnavailable):
        chat(client, route)
    assert server.closed_on_arrival == 1
    assert server.count("/v1/chat/completions") == 1
    assert server.connections == 1


def test_a_probe_does_not_take_a_connection_of_the_requests(
    client: UpstreamClient, servers: list[KeepAliveServer]
) -> None:
    # /readyz's probe after a request: the request's pooled connection (idle past the
    # upstream's keep-alive) is not the probe's, and the probe is not reported unreachable.
    server = serve(servers, idle_close_s=0.2)
    route = one_replica(server)
    chat(client, route)
    time.sleep(0.3)
    assert client.probe(server.url) is None
    assert server.count("/health") == 1


def test_a_probe_on_a_connection_closed_under_it_is_sent_again(
    servers: list[KeepAliveServer],
) -> None:
    server = serve(servers, idle_close_s=0.2)
    upstreams = UpstreamClient(2.0, 5.0)
    try:
        assert upstreams.probe(server.url) is None
        time.sleep(0.3)  # its connection is kept (idle < 1 s) but the upstream timed it out
        assert upstreams.probe(server.url) is None
    finally:
        upstreams.close()
    assert server.closed_on_arrival == 1
    assert server.count("/health") == 2
