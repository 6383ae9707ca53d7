"""Gateway overhead benchmark: the same fast upstream called directly, through the
gateway, and through LiteLLM's proxy, all in one run. Prints a table.

Run with `make perf`. Ratios and differences against the direct baseline are what
count: absolute numbers on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.perf.conftest import Target

pytestmark = pytest.mark.perf

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
SEQUENTIAL = 600
WARMUP = 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies_ms(target: Target, n: int = SEQUENTIAL) -> list[float]:
    with httpx.Client(headers=target.headers, timeout=10) as client:
        for _ in range(WARMUP):
            client.post(f"{target.base_url}/chat/completions", json=BODY).raise_for_status()
        out = []
        for _ in range(n):
            start = time.perf_counter()
            client.post(f"{target.base_url}/chat/completions", json=BODY).raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
    return out


def ttft_ms(target: Target, n: int = 200) -> list[float]:
    body = {**BODY, "stream": True, "chunks": 4}
    out = []
    with httpx.Client(headers=target.headers, timeout=10) as client:
        for i in range(n + WARMUP):
            start = time.perf_counter()
            with client.stream("POST", f"{target.base_url}/chat/completions", json=body) as r:
                lines = r.iter_lines()
                for line in lines:
                    if line.startswith("data:") and '"content"' in line:
                        if i >= WARMUP:
                            out.append((time.perf_counter() - start) * 1000)
                        break
                for _ in lines:  # drain the rest of the stream
                    pass
    return out


def throughput_rps(target: Target, tmp: Path, seconds: int = 8, connections: int = 32) -> float:
    script = tmp / f"{target.name}.lua"
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in target.headers.items())
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{headers}wrk.body = [[{json.dumps(BODY)}]]\n"
    )
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"{target.base_url}/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx" in result.stdout:
        raise AssertionError(f"{target.name}: errors under load\n{result.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def own_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def serving_pid(target: Target) -> int:
    """The process that holds the connections: a gunicorn worker, else the server itself."""
    assert target.pid is not None
    workers = children(target.pid)
    return workers[0] if target.name == "gateway" and workers else target.pid


@dataclass
class Held:
    streams: int  # streams that delivered every chunk
    gap_p99_ms: float  # 99th percentile over streams of the longest wait between two chunks
    stalled: int  # streams that once waited more than STALL_FACTOR intervals for a chunk
    idle_kib_per_stream: float  # serving process's RSS growth with every stream open


STREAMS, STREAM_CHUNKS, STREAM_INTERVAL_S, STALL_FACTOR = 500, 10, 0.5, 3


def hold_streams(target: Target, n: int = STREAMS) -> Held:
    """Open ``n`` slow streams at once through ``target``; measure their pace and memory."""
    return asyncio.run(_hold_streams(target, n))


async def _hold_streams(target: Target, n: int) -> Held:
    """The client is bare asyncio (no HTTP library) so that 500 streams cost it little CPU:
    on two cores a heavier client would itself delay the chunks it is timing."""
    body = {**BODY, "stream": True, "chunks": STREAM_CHUNKS, "interval_s": STREAM_INTERVAL_S}
    url = urlsplit(f"{target.base_url}/chat/completions")
    payload = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
    request = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n{head}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + payload
    pid = serving_pid(target)
    before = own_rss_kib(pid)
    started = 0

    async def one() -> tuple[bool, float]:
        nonlocal started
        reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=1 << 20)
        gaps, last, got = [0.0], None, 0
        try:
            writer.write(request)
            status = await reader.readline()
            if b" 200 " not in status:
                raise AssertionError(f"{target.name}: {status!r}")
            finished = False
            while line := await reader.readline():
                if line.startswith(b"data: [DONE]"):
                    finished = got >= STREAM_CHUNKS  # a peer may drop the empty first delta
                    break
                if b'"content"' not in line:
                    continue
                now = time.perf_counter()
                if last is not None:
                    gaps.append(now - last)
                last, got = now, got + 1
                if got == 1:
                    started += 1
        finally:
            writer.close()
        return finished, max(gaps)

    tasks = asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    deadline = time.monotonic() + 30
    while started < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    peak = own_rss_kib(pid)  # every stream open, each waiting for its next chunk
    results = await tasks
    errors = {repr(r)[:120] for r in results if isinstance(r, BaseException)}
    if errors:
        print(f"\n{target.name}: {len(errors)} kinds of stream errors, e.g. {sorted(errors)[:3]}")
    done = [r for r in results if isinstance(r, tuple) and r[0]]
    max_gaps = [gap for _, gap in done] or [float("nan")]
    return Held(
        streams=len(done),
        gap_p99_ms=percentile(max_gaps, 0.99) * 1000,
        stalled=sum(gap > STALL_FACTOR * STREAM_INTERVAL_S for gap in max_gaps),
        idle_kib_per_stream=(peak - before) / n,
    )


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (a gunicorn master and its worker)."""
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0
    for p in pids:
        status = Path(f"/proc/{p}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return total / 1024


def test_gateway_overhead(
    upstream: Target, gateway: Target, litellm: Target | None, tmp_path: Path
) -> None:
    targets = [t for t in (upstream, gateway, litellm) if t is not None]
    rows: dict[str, dict[str, float]] = {t.name: {} for t in targets}
    for t in targets:
        lat = latencies_ms(t)
        rows[t.name]["p50 ms"] = statistics.median(lat)
        rows[t.name]["p99 ms"] = percentile(lat, 0.99)
        rows[t.name]["ttft p50 ms"] = statistics.median(ttft_ms(t))
    if shutil.which("wrk"):
        for t in targets:
            rows[t.name]["req/s"] = throughput_rps(t, tmp_path)
    for t in targets:
        rows[t.name]["RSS MiB"] = rss_mib(t.pid) if t.pid else float("nan")
        rows[t.name]["worker RSS MiB"] = own_rss_kib(serving_pid(t)) / 1024
    for t in targets:
        held = hold_streams(t)
        rows[t.name]["streams held"] = held.streams
        rows[t.name]["stalled"] = held.stalled
        rows[t.name]["max gap p99 ms"] = held.gap_p99_ms
        rows[t.name]["KiB/idle strm"] = held.idle_kib_per_stream

    base = rows["direct"]
    print("\n\nGateway overhead (same upstream, same run; 'added' = minus direct)")
    header = f"{'metric':<16}" + "".join(f"{t.name:>12}" for t in targets)
    header += "".join(f"{'+' + t.name:>14}" for t in targets[1:])
    print(header)
    for metric in base:
        line = f"{metric:<16}" + "".join(f"{rows[t.name][metric]:>12.2f}" for t in targets)
        if metric.endswith("ms"):
            line += "".join(f"{rows[t.name][metric] - base[metric]:>14.2f}" for t in targets[1:])
        print(line)
    if litellm is not None and "req/s" in base:
        ratio = rows["gateway"]["req/s"] / rows["litellm"]["req/s"]
        print(f"throughput gateway / litellm: {ratio:.1f}x")
    print(
        f"streams: {STREAMS} at once, {STREAM_CHUNKS} chunks {STREAM_INTERVAL_S} s apart; "
        f"stalled = a wait over {STALL_FACTOR * STREAM_INTERVAL_S} s for a chunk"
    )
    assert rows["gateway"]["streams held"] == STREAMS  # one gevent worker holds them all
    assert rows["gateway"]["stalled"] == 0
