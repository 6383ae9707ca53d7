"""The recording functions change what the metrics app serves, in one process and in many."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from appliance.api import metrics
from tests import timing


def scrape(app: metrics.WsgiApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample served at /metrics, keyed by (name, sorted labels)."""
    response = Client(app).get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture()
def single_process(monkeypatch: pytest.MonkeyPatch) -> metrics.WsgiApp:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    return metrics.metrics_app()


def test_recording_shows_in_single_process_mode(single_process: metrics.WsgiApp) -> None:
    before = scrape(single_process)
    metrics.observe_request("routes.chat_completions", 200, 0.003)
    metrics.observe_ttft("m-single", 0.02)
    metrics.count_tokens("m-single", 7, 11)
    metrics.count_tokens("m-single", None, 0)
    metrics.count_upstream_error("http://replica-1:8000/v1")
    metrics.count_rejection("requests_per_minute")
    metrics.stream_started()
    metrics.stream_started()
    metrics.stream_ended()
    metrics.set_limiter_mode("local-fallback")
    metrics.count_privacy_findings(
        {"input": {"CN_PHONE": {"pseudonymize": 2}}, "output": {"EMAIL": 1}, "blocked": "x"}
    )
    after = scrape(single_process)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    latency = "appliance_api_request_duration_seconds"
    endpoint = {"endpoint": "routes.chat_completions", "status": "200"}
    assert delta(f"{latency}_count", **endpoint) == 1
    assert delta(f"{latency}_bucket", **endpoint, le="0.005") == 1
    assert delta(f"{latency}_bucket", **endpoint, le="0.0025") == 0
    assert value(after, f"{latency}_bucket", **endpoint, le="0.0005") >= 0  # smallest bucket
    assert value(after, f"{latency}_bucket", **endpoint, le="60.0") >= 1  # largest bucket
    assert delta("appliance_api_time_to_first_token_seconds_count", model="m-single") == 1
    assert delta("appliance_api_prompt_tokens_total", model="m-single") == 7
    assert delta("appliance_api_completion_tokens_total", model="m-single") == 11
    assert delta("appliance_api_upstream_errors_total", replica="http://replica-1:8000/v1") == 1
    assert delta("appliance_api_rate_limit_rejections_total", limit="requests_per_minute") == 1
    assert delta("appliance_api_streams_in_flight") == 1
    findings = "appliance_api_privacy_findings_total"
    assert delta(findings, direction="input", type="CN_PHONE", action="pseudonymize") == 2
    assert delta(findings, direction="output", type="EMAIL", action="found") == 1
    assert value(after, "appliance_api_rate_limiter_mode", mode="local-fallback") == 1
    assert value(after, "appliance_api_rate_limiter_mode", mode="redis") == 0
    assert value(after, "appliance_api_rate_limiter_mode", mode="local") == 0
    # The default registry carries the process's own metrics.
    assert any(name == "process_cpu_seconds_total" for name, _ in after)
    metrics.stream_ended()


def test_only_metrics_path_is_served(single_process: metrics.WsgiApp) -> None:
    response = Client(single_process).get("/")
    assert response.status_code == 404


RECORD = textwrap.dedent(
    """
    import sys
    from appliance.api import metrics

    which = sys.argv[1]
    metrics.observe_request("routes.models", 401, 0.001)
    metrics.count_tokens("m-multi", 5, 3)
    metrics.count_rejection("tokens_per_day")
    metrics.count_upstream_error("http://r:1/v1")
    metrics.set_limiter_mode("redis" if which == "a" else "local-fallback")
    metrics.stream_started()
    print(__import__("os").getpid())
    """
)


def record_in_subprocess(multiproc_dir: Path, which: str) -> int:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(multiproc_dir)}
    done = subprocess.run(
        [sys.executable, "-c", RECORD, which],
        env=env,
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        check=True,
    )
    return int(done.stdout.strip())


def test_multiprocess_mode_sums_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    multiproc_dir = tmp_path / "prom"
    multiproc_dir.mkdir()
    pid_a = record_in_subprocess(multiproc_dir, "a")
    record_in_subprocess(multiproc_dir, "b")
    assert list(multiproc_dir.glob("*.db"))

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(multiproc_dir))
    app = metrics.metrics_app()
    samples = scrape(app)
    latency = {"endpoint": "routes.models", "status": "401"}
    assert value(samples, "appliance_api_request_duration_seconds_count", **latency) == 2
    assert value(samples, "appliance_api_prompt_tokens_total", model="m-multi") == 10
    assert value(samples, "appliance_api_completion_tokens_total", model="m-multi") == 6
    assert value(samples, "appliance_api_rate_limit_rejections_total", limit="tokens_per_day") == 2
    assert value(samples, "appliance_api_upstream_errors_total", replica="http://r:1/v1") == 2
    assert value(samples, "appliance_api_streams_in_flight") == 2
    assert value(samples, "appliance_api_rate_limiter_mode", mode="redis") == 1
    assert value(samples, "appliance_api_rate_limiter_mode", mode="local-fallback") == 1
    # No process metrics of the scraping process itself: they would describe one process only.
    assert not any(name == "process_cpu_seconds_total" for name, _ in samples)

    # A worker that exits leaves the live sums (streams, limiter mode); counters stay.
    metrics.multiprocess.mark_process_dead(pid_a)
    samples = scrape(app)
    assert value(samples, "appliance_api_streams_in_flight") == 1
    assert value(samples, "appliance_api_rate_limiter_mode", mode="redis") == 0
    assert value(samples, "appliance_api_rate_limiter_mode", mode="local-fallback") == 1
    assert value(samples, "appliance_api_prompt_tokens_total", model="m-multi") == 10
