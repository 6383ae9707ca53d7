"""One of three replicas dies under load: no client of the gateway sees an error.

The replicas are stand-ins that answer canned chat completions (JSON and SSE) after a
short delay, so that requests overlap and the kill lands on requests in flight; three
built-in engines would spend this test's time generating tokens on two CPU cores, and
what is tested here is the gateway's pool. The kill closes the listening socket and
every open connection (keep-alive and in-flight alike), as a crashed process would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from appliance.services import Services
from appliance.upstream.registry import add_model
from tests import timing
from tests.api import conftest as api_fixtures
from tests.api.conftest import Caller
from tests.conftest import LiveServer, unique
from tests.upstream.test_pool import Stub

api_server = api_fixtures.api_server
make_caller = api_fixtures.make_caller

THREADS, REQUESTS = 8, 25


class KillableStub(Stub):
    """A stand-in that can die like a crashed process: every connection drops at once.

    It dies between writes: a response already being written is let finish first (else a
    stream cut after its first bytes would be a mid-stream failure, which no gateway can
    retry and which this test is not about); requests still being handled die unanswered.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.connections: list[socket.socket] = []
        self.dead = False
        self.writing = 0
        self.admitted = 0  # requests it began to handle while alive
        server = self.server.server
        serve = server.process_request
        handle = server.app

        def app(environ: Any, start_response: Any) -> Iterator[bytes]:
            # A crashed process handles nothing more: a request whose connection was taken
            # just before the kill and whose headers were parsed just after is dropped
            # unanswered, like one still in the socket's buffer (it is never counted).
            with self.lock:
                if self.dead:
                    raise ConnectionAbortedError(f"{self.name} is dead")
                self.admitted += 1
            body = handle(environ, start_response)  # parked requests wait in here
            with self.lock:
                self.writing += 1
            try:
                yield from body
            finally:
                with self.lock:
                    self.writing -= 1

        server.app = app

        def process_request(sock: Any, address: Any) -> None:
            with self.lock:
                if self.dead:
                    sock.close()
                    return
                self.connections.append(sock)
            serve(sock, address)

        server.process_request = process_request  # type: ignore[method-assign]

    def kill(self) -> None:
        with self.lock:
            self.dead = True
        deadline = timing.deadline(2)
        while self.writing and time.monotonic() < deadline:
            time.sleep(0.001)
        with self.lock:
            for sock in self.connections:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)
        self.server.stop()
        if self.gate is not None:
            self.gate.set()  # let the parked handlers finish writing into closed sockets


@pytest.fixture()
def replicas() -> Iterator[list[KillableStub]]:
    made = [KillableStub(f"replica-{i}") for i in range(3)]
    for stub in made:
        stub.delay_s = 0.02
    yield made
    for stub in made[1:]:
        stub.stop()


def test_killing_a_replica_under_load_loses_no_request(
    api_server: LiveServer,
    make_caller: Callable[..., Caller],
    pg_services: Services,
    replicas: list[KillableStub],
) -> None:
    model = unique("pooled")
    with pg_services.db.session() as session:
        add_model(session, model, upstream_urls=[r.url for r in replicas], served_name="tiny")
    victim, survivors = replicas[0], replicas[1:]
    done = Counter[str]()
    errors: list[str] = []
    lock = threading.Lock()
    half_way = threading.Event()

    def client_thread(index: int) -> None:
        client = openai.OpenAI(
            base_url=f"{api_server.url}/v1", api_key=make_caller(role="app").key, max_retries=0
        )
        messages = [{"role": "user", "content": f"hello {index}"}]
        for i in range(REQUESTS):
            try:
                if (index + i) % 2:
                    answer = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
                    served_by = answer.choices[0].message.content or ""
                else:
                    chunks = client.chat.completions.create(
                        model=model,
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                    )
                    served_by = "".join(c.choices[0].delta.content or "" for c in chunks)
                assert served_by in {r.name for r in replicas}, served_by
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                done[served_by] += 1
                if sum(done.values()) >= THREADS * REQUESTS // 3:
                    half_way.set()

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    assert half_way.wait(timing.scaled(60)), "the load did not get going"
    # park the next requests that reach the victim, so that it dies with requests in flight
    victim.gate = threading.Event()
    parked_from = victim.hits
    deadline = timing.deadline(10)
    while victim.hits == parked_from and time.monotonic() < deadline:
        time.sleep(0.005)
    victim.kill()
    at_kill = {r.name: r.hits for r in replicas}
    for thread in threads:
        thread.join(timing.scaled(60))

    assert errors == []
    assert sum(done.values()) == THREADS * REQUESTS
    assert done[victim.name] > 0  # it took its share while it lived,
    assert at_kill[victim.name] > done[victim.name]  # died with requests in flight,
    assert all(s.hits > at_kill[s.name] for s in survivors)  # the others served the rest
    pool = api_server.server.app.extensions["appliance"].upstreams.replicas()
    assert pool[victim.url].errors > 0
    assert {pool[s.url].outstanding for s in replicas} == {0}
