"""The replica pool: least-outstanding routing, ejection and re-admission, safe retries.

The upstreams here are small stand-ins (Flask apps on a live server answering canned
OpenAI JSON) whose behaviour each test sets: it is the pool being tested, not a model.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from flask import Flask, Response, request

from appliance.errors import UpstreamError, UpstreamRejected, UpstreamUnavailable
from appliance.upstream.client import UpstreamClient
from appliance.upstream.pool import EJECTED, HALF_OPEN, Outcome, ReplicaPool
from appliance.upstream.routes import Route
from tests import timing
from tests.conftest import LiveServer, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def chat_completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def chat_chunks(model: str, text: str) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        body = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": text}, None),
        chunk({}, "stop", usage=usage),
        b"data: [DONE]\n\n",
    ]


class Stub:
    """A stand-in OpenAI-compatible replica; tests change its behaviour as they go.

    ``text`` answers say which replica served them; ``models`` records the ``model``
    each request carried; ``gate`` (an Event) holds requests until it is set;
    ``break_stream`` sends one chunk of a stream and then drops the connection.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.reset()
        app = Flask(name)
        app.add_url_rule("/health", "health", lambda: {"status": "ok"})
        app.add_url_rule("/v1/chat/completions", "chat", self.chat, methods=["POST"])
        self.server = LiveServer(app)
        self.url = self.server.url

    def reset(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self.gate: threading.Event | None = None
        self.break_stream = False
        self.models: list[str] = []

    @property
    def hits(self) -> int:
        return len(self.models)

    def chat(self) -> Any:
        body = request.get_json()
        with self.lock:
            self.models.append(body["model"])
        if self.gate is not None:
            self.gate.wait(timing.scaled(10))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.status >= 400:
            error = {"message": f"{self.name} says no", "type": "stub_error"}
            return {"error": error}, self.status
        if not body.get("stream"):
            return chat_completion(body["model"], self.name)
        chunks = chat_chunks(body["model"], self.name)
        if self.break_stream:
            return Response(self._broken(chunks), mimetype="text/event-stream")
        return Response(b"".join(chunks), mimetype="text/event-stream")

    @staticmethod
    def _broken(chunks: list[bytes]) -> Iterator[bytes]:
        yield chunks[0]
        time.sleep(0.05)
        raise ConnectionAbortedError("replica died mid-stream")  # werkzeug drops the socket

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.stop()


@pytest.fixture(scope="module")
def stub_servers() -> Iterator[list[Stub]]:
    made = [Stub(f"replica-{i}") for i in range(3)]
    yield made
    for stub in made:
        stub.stop()


@pytest.fixture()
def stubs(stub_servers: list[Stub]) -> list[Stub]:
    """Three running stand-ins, back to answering 200 at once (each test gets a new pool)."""
    for stub in stub_servers:
        stub.reset()
    return stub_servers


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def client(clock: Clock) -> Iterator[UpstreamClient]:
    pool = ReplicaPool(failure_threshold=3, cooldown_s=10.0, clock=clock, rng=random.Random(7))
    upstreams = UpstreamClient(2.0, 5.0, pool=pool)
    yield upstreams
    upstreams.close()


def route(*urls: str) -> Route:
    return Route("m", "served-m", tuple(urls))


def chat(client: UpstreamClient, r: Route) -> str:
    body = {"model": r.served_name, "messages": [{"role": "user", "content": "hi"}]}
    result = client.post_json(r, "/v1/chat/completions", body)
    return str(result["choices"][0]["message"]["content"])


def outstanding(client: UpstreamClient) -> dict[str, int]:
    return {url: s.outstanding for url, s in client.replicas().items()}


# -- the pool on its own ------------------------------------------------------------


def test_least_outstanding_with_random_tie_break() -> None:
    pool = ReplicaPool(rng=random.Random(1))
    first = pool.acquire(["a", "b", "c"])
    second = pool.acquire(["a", "b", "c"])
    third = pool.acquire(["a", "b", "c"])
    assert first and second and third
    assert {first.url, second.url, third.url} == {"a", "b", "c"}
    second.release(Outcome.SUCCESS)
    again = pool.acquire(["a", "b", "c"])
    assert again is not None and again.url == second.url  # the only idle one
    picks = set()
    for _ in range(50):
        lease = pool.acquire(["x", "y"])
        assert lease is not None
        picks.add(lease.url)
        lease.release(Outcome.SUCCESS)
    assert picks == {"x", "y"}


def test_release_is_counted_once() -> None:
    pool = ReplicaPool()
    lease = pool.acquire(["a"])
    assert lease is not None
    lease.release(Outcome.FAILURE)
    lease.release(Outcome.FAILURE)
    lease.release(Outcome.SUCCESS)
    status = pool.status()["a"]
    assert (status.outstanding, status.consecutive_failures, status.errors) == (0, 1, 1)


def test_ejection_then_half_open_trial_readmits(clock: Clock) -> None:
    pool = ReplicaPool(failure_threshold=3, cooldown_s=10.0, clock=clock)
    for _ in range(3):
        lease = pool.acquire(["bad"])
        assert lease is not None
        lease.release(Outcome.FAILURE)
    assert pool.status()["bad"].state == EJECTED
    for _ in range(5):  # ejected: the healthy one takes everything
        lease = pool.acquire(["bad", "good"])
        assert lease is not None and lease.url == "good"
        lease.release(Outcome.SUCCESS)
    clock.now += 10.0
    assert pool.status()["bad"].state == HALF_OPEN
    trial = pool.acquire(["bad", "good"], exclude={"good"})
    assert trial is not None and trial.trial
    # one trial at a time: while it runs, the others go to the healthy replica
    other = pool.acquire(["bad", "good"])
    assert other is not None and other.url == "good"
    other.release(Outcome.SUCCESS)
    trial.release(Outcome.FAILURE)  # the trial failed: ejected for another cooldown
    assert pool.status()["bad"].state == EJECTED
    clock.now += 10.0
    trial = pool.acquire(["bad"])
    assert trial is not None and trial.trial
    trial.release(Outcome.SUCCESS)
    status = pool.status()["bad"]
    assert (status.state, status.consecutive_failures) == ("admitted", 0)


def test_every_replica_ejected_still_tries_one(clock: Clock) -> None:
    pool = ReplicaPool(failure_threshold=1, cooldown_s=10.0, clock=clock)
    for url in ("a", "b"):
        lease = pool.acquire([url])
        assert lease is not None
        lease.release(Outcome.FAILURE)
    lease = pool.acquire(["a", "b"])
    assert lease is not None and lease.readmits
    lease.release(Outcome.SUCCESS)
    assert pool.status()[lease.url].state == "admitted"


def test_database_unhealthy_goes_last_until_probed_here(clock: Clock) -> None:
    pool = ReplicaPool(clock=clock)
    held = [pool.acquire(["a", "b"], unhealthy={"a"}) for _ in range(3)]
    assert [lease.url for lease in held if lease] == ["b", "b", "b"]
    pool.record_probe("a", True)  # this process's own check is fresher than the database
    lease = pool.acquire(["a", "b"], unhealthy={"a"})
    assert lease is not None and lease.url == "a"


def test_probes_feed_the_breaker(clock: Clock) -> None:
    pool = ReplicaPool(failure_threshold=2, cooldown_s=5.0, clock=clock)
    pool.acquire(["a"]).release(Outcome.SUCCESS)  # type: ignore[union-attr]
    pool.record_probe("a", False)
    pool.record_probe("a", False)
    assert pool.status()["a"].state == EJECTED
    pool.record_probe("a", True)  # a passing probe does not cut the cooldown short
    assert pool.status()["a"].state == EJECTED
    clock.now += 5.0
    pool.record_probe("a", True)
    assert pool.status()["a"].state == "admitted"


# -- the client against live stand-ins ------------------------------------------------


def test_idle_replica_is_picked_while_another_is_busy(
    client: UpstreamClient, stubs: list[Stub]
) -> None:
    slow, idle = stubs[0], stubs[1]
    slow.gate = threading.Event()
    r = route(slow.url, idle.url)
    # make sure the slow request lands on the slow replica: hold a lease on the idle one
    hold = client.pool.acquire([idle.url])
    busy = threading.Thread(target=chat, args=(client, r))
    busy.start()
    deadline = timing.deadline(10)
    while slow.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hold is not None
    hold.release(Outcome.NEUTRAL)
    assert [chat(client, r) for _ in range(5)] == [idle.name] * 5
    assert outstanding(client) == {slow.url: 1, idle.url: 0}
    slow.gate.set()
    busy.join(timing.scaled(10))
    assert outstanding(client) == {slow.url: 0, idle.url: 0}


def test_5xx_before_any_byte_is_retried_on_another_replica(
    client: UpstreamClient, stubs: list[Stub]
) -> None:
    broken, good = stubs[0], stubs[1]
    broken.status = 500
    hold = client.pool.acquire([good.url])  # the first attempt goes to the broken one
    assert chat(client, route(broken.url, good.url)) == good.name
    assert hold is not None
    hold.release(Outcome.NEUTRAL)
    assert (broken.hits, good.hits) == (1, 1)
    assert client.replicas()[broken.url].errors == 1
    assert outstanding(client) == {broken.url: 0, good.url: 0}


def test_unreachable_replica_is_skipped(client: UpstreamClient, stubs: list[Stub]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = route(dead, stubs[0].url)
    assert {chat(client, r) for _ in range(4)} == {stubs[0].name}
    assert outstanding(client) == {dead: 0, stubs[0].url: 0}


def test_all_failing_gives_an_error_after_bounded_attempts(
    client: UpstreamClient, stubs: list[Stub]
) -> None:
    for stub in stubs:
        stub.status = 503
    extra = Stub("replica-extra")
    extra.status = 503
    try:
        with pytest.raises(UpstreamError, match="status 503"):
            chat(client, route(*(s.url for s in [*stubs, extra])))
        assert sum(s.hits for s in [*stubs, extra]) == client.max_attempts == 3
    finally:
        extra.stop()
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    with pytest.raises(UpstreamUnavailable, match="no upstream could be reached"):
        chat(client, route(*dead))
    assert set(outstanding(client).values()) == {0}


def test_4xx_is_relayed_without_retry(client: UpstreamClient, stubs: list[Stub]) -> None:
    stubs[0].status = 400
    holds = [client.pool.acquire([stub.url]) for stub in stubs[1:]]
    with pytest.raises(UpstreamRejected) as caught:
        chat(client, route(*(s.url for s in stubs)))
    for hold in holds:
        hold.release(Outcome.NEUTRAL)  # type: ignore[union-attr]
    assert (caught.value.status, caught.value.message) == (400, "replica-0 says no")
    assert [s.hits for s in stubs] == [1, 0, 0]
    assert all(s.consecutive_failures == 0 for s in client.replicas().values())


def test_read_timeout_is_not_retried(stubs: list[Stub]) -> None:
    slow, other = stubs[0], stubs[1]
    slow.delay_s = 1.0
    upstreams = UpstreamClient(2.0, 0.3)
    try:
        hold = upstreams.pool.acquire([other.url])
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            chat(upstreams, route(slow.url, other.url))
        assert hold is not None
        hold.release(Outcome.NEUTRAL)
        assert (slow.hits, other.hits) == (1, 0)
        assert {u: s.outstanding for u, s in upstreams.replicas().items()} == {
            slow.url: 0,
            other.url: 0,
        }
    finally:
        upstreams.close()


def test_ejected_replica_gets_no_traffic_until_its_cooldown_ends(
    client: UpstreamClient, stubs: list[Stub], clock: Clock
) -> None:
    flaky, good = stubs[0], stubs[1]
    flaky.status = 502
    r = route(flaky.url, good.url)
    for _ in range(3):  # each lands on the flaky replica first, then retries on the good one
        hold = client.pool.acquire([good.url])
        assert chat(client, r) == good.name
        hold.release(Outcome.NEUTRAL)  # type: ignore[union-attr]
    assert client.replicas()[flaky.url].state == EJECTED
    flaky.status = 200  # it recovers, but stays out for the cooldown
    hits = flaky.hits
    assert {chat(client, r) for _ in range(6)} == {good.name}
    assert flaky.hits == hits
    clock.now += 10.0
    hold = client.pool.acquire([good.url])
    assert chat(client, r) == flaky.name  # the half-open trial
    hold.release(Outcome.NEUTRAL)  # type: ignore[union-attr]
    assert client.replicas()[flaky.url].state == "admitted"


def stream_texts(client: UpstreamClient, r: Route) -> Iterator[str]:
    body = {"model": r.served_name, "messages": [], "stream": True}
    stream = client.open_stream(r, "/v1/chat/completions", body)
    try:
        for line in stream.iter_lines():
            if line.startswith("data: {"):
                yield line
    finally:
        stream.close()


def test_stream_counters_after_exhaustion_and_early_close(
    client: UpstreamClient, stubs: list[Stub]
) -> None:
    r = route(stubs[0].url)
    assert len(list(stream_texts(client, r))) == 3
    assert outstanding(client) == {stubs[0].url: 0}
    texts = stream_texts(client, r)
    next(texts)
    assert outstanding(client) == {stubs[0].url: 1}
    texts.close()  # the client went away: the upstream response is closed
    assert outstanding(client) == {stubs[0].url: 0}
    stream = client.open_stream(r, "/v1/chat/completions", {"model": "m", "stream": True})
    assert outstanding(client) == {stubs[0].url: 1}
    del stream  # dropped without close: the lease is still given back
    assert outstanding(client) == {stubs[0].url: 0}


def test_a_stream_that_started_is_never_retried(client: UpstreamClient, stubs: list[Stub]) -> None:
    breaking, other = stubs[0], stubs[1]
    breaking.break_stream = True
    hold = client.pool.acquire([other.url])
    texts = stream_texts(client, route(breaking.url, other.url))
    assert '"role": "assistant"' in next(texts)
    hold.release(Outcome.NEUTRAL)  # type: ignore[union-attr]
    with pytest.raises(UpstreamError, match="broke off"):
        list(texts)
    assert (breaking.hits, other.hits) == (1, 0)
    status = client.replicas()[breaking.url]
    assert (status.outstanding, status.errors) == (0, 1)


def test_health_thread_probes_and_stops(stubs: list[Stub]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    upstreams = UpstreamClient(1.0, 5.0, failure_threshold=1, health_interval_s=0.05)
    try:
        upstreams.pool.acquire([dead, stubs[0].url])
        upstreams.health.ensure_started()
        assert upstreams.health.running
        deadline = timing.deadline(10)
        while upstreams.replicas()[dead].probe_ok is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstreams.replicas()[dead].state == EJECTED
        assert upstreams.replicas()[stubs[0].url].probe_ok is True
    finally:
        upstreams.close()
    assert not upstreams.health.running
    with urllib3.PoolManager() as http:
        assert upstreams.health.check_once(http)[stubs[0].url] is None
