"""Gateway overhead benchmark: the same fast upstream called directly, through the
gateway, and through LiteLLM's proxy, all in one run. Prints a table.

Run with `make perf`. Ratios and differences against the direct baseline are what
count: absolute numbers on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

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

    base = rows["direct"]
    print("\n\nGateway overhead (same upstream, same run; 'added' = minus direct)")
    header = f"{'metric':<14}" + "".join(f"{t.name:>12}" for t in targets)
    header += "".join(f"{'+' + t.name:>14}" for t in targets[1:])
    print(header)
    for metric in base:
        line = f"{metric:<14}" + "".join(f"{rows[t.name][metric]:>12.2f}" for t in targets)
        if metric.endswith("ms"):
            line += "".join(f"{rows[t.name][metric] - base[metric]:>14.2f}" for t in targets[1:])
        print(line)
    if litellm is not None and "req/s" in base:
        ratio = rows["gateway"]["req/s"] / rows["litellm"]["req/s"]
        print(f"throughput gateway / litellm: {ratio:.1f}x")
    assert rows["gateway"]["p50 ms"] > 0
