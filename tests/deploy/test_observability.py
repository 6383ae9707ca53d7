"""Monitoring: the alert rules (promtool check and unit tests: each alert fires just past
the seeds' threshold and not at or below it), the Grafana dashboard (a JSON schema of
what we rely on, every query valid PromQL over metrics that really exist), and the
observability role applied for real into a temp dir."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY

import appliance.api.metrics  # noqa: F401  (registers the API's metrics)
from tests import timing
from tests.deploy.test_deploy_files import ANSIBLE, ROOT
from tests.deploy.tools import require

ROLE = ANSIBLE / "roles" / "observability"
FILES = ROLE / "files"
RULES = FILES / "appliance-alerts.yml"
RULES_TEST = Path(__file__).parent / "prometheus" / "appliance-alerts.test.yml"
DASHBOARD = FILES / "grafana-dashboard-appliance.json"
PROVIDER = FILES / "grafana-dashboards.yml"
DATASOURCE_UID = "appliance-prometheus"

# Exported by others: the NVIDIA DCGM exporter, the node exporter, Prometheus itself.
EXTERNAL_METRICS = {
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "up",
}
METRIC_NAME = re.compile(r"\b(appliance_\w+|DCGM_FI_\w+|node_\w+|up)\b(?!\s*\()")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def appliance_metric_names() -> set[str]:
    """Every series name the appliance exposes: the API's registry, as exposed (counters
    with _total, histograms as _bucket/_count/_sum), and the audit lag collector's gauges."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("appliance_"):
            continue
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    audit = (ROOT / "appliance" / "audit" / "metrics.py").read_text(encoding="utf-8")
    names |= set(re.findall(r'"(appliance_audit_\w+)"', audit))
    return names


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


# --- alert rules -------------------------------------------------------------------------


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_alert_fires_past_its_threshold_and_not_at_or_below() -> None:
    result = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        own = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] == [] for case in own), f"{rule['alert']}: no quiet case"
        assert any(case["exp_alerts"] for case in own), f"{rule['alert']}: no firing case"


def test_the_unit_tests_catch_a_moved_threshold(tmp_path: Path) -> None:
    """The rule tests can fail: with the GPU threshold moved from 90 to 95 they do."""
    moved = RULES.read_text(encoding="utf-8").replace(
        "DCGM_FI_DEV_GPU_UTIL > 90", "DCGM_FI_DEV_GPU_UTIL > 95"
    )
    assert moved != RULES.read_text(encoding="utf-8")
    (tmp_path / "rules.yml").write_text(moved)
    suite = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    suite["rule_files"] = ["rules.yml"]
    (tmp_path / "test.yml").write_text(yaml.safe_dump(suite))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ApplianceGpuUtilisationHigh" in result.stdout + result.stderr


def test_the_rules_hold_the_seeds_thresholds() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert by_name["ApplianceLatencyP99High"]["expr"].rstrip().endswith(") > 0.5")
    assert "histogram_quantile(0.99," in by_name["ApplianceLatencyP99High"]["expr"]
    gpu = by_name["ApplianceGpuUtilisationHigh"]
    assert gpu["expr"] == "DCGM_FI_DEV_GPU_UTIL > 90" and gpu["for"] == "30s"  # 3 x 15 s
    assert by_name["ApplianceGpuMemoryHeadroomLow"]["expr"].endswith("< 0.20")
    assert by_name["ApplianceHostMemoryHeadroomLow"]["expr"].endswith("< 0.20")
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# --- the dashboard --------------------------------------------------------------------------

DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time", "refresh"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "editable": {"const": False},
        "panels": {
            "type": "array",
            "minItems": 10,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["row", "timeseries", "stat", "text", "gauge"]},
                    "title": {"type": "string", "minLength": 1},
                    "gridPos": {
                        "type": "object",
                        "required": ["x", "y", "w", "h"],
                        "properties": {
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "y": {"type": "integer", "minimum": 0},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "h": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"enum": ["timeseries", "stat", "gauge"]}}},
                        "then": {
                            "required": ["datasource", "targets", "fieldConfig"],
                            "properties": {
                                "datasource": {"$ref": "#/$defs/datasource"},
                                "targets": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["refId", "expr"],
                                        "properties": {
                                            "refId": {"type": "string", "pattern": "^[A-Z]$"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "datasource": {"$ref": "#/$defs/datasource"},
                                        },
                                    },
                                },
                                "fieldConfig": {
                                    "type": "object",
                                    "required": ["defaults"],
                                    "properties": {
                                        "defaults": {"type": "object", "required": ["unit"]}
                                    },
                                },
                            },
                        },
                    },
                    {
                        "if": {"properties": {"type": {"const": "text"}}},
                        "then": {
                            "required": ["options"],
                            "properties": {"options": {"type": "object", "required": ["content"]}},
                        },
                    },
                ],
            },
        },
    },
    "$defs": {
        "datasource": {
            "type": "object",
            "required": ["type", "uid"],
            "properties": {"type": {"const": "prometheus"}, "uid": {"const": DATASOURCE_UID}},
        }
    },
}


def test_the_dashboard_matches_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(DASHBOARD_SCHEMA)
    jsonschema.validate(dashboard(), DASHBOARD_SCHEMA, cls=jsonschema.Draft202012Validator)
    broken = dashboard() | {"panels": [{"id": 1, "type": "stat", "title": "x", "gridPos": {}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, DASHBOARD_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard query, as a recording rule."""
    records = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_used_is_one_that_is_really_exported() -> None:
    known = appliance_metric_names() | EXTERNAL_METRICS
    texts = {"dashboard": dashboard_exprs(), "rules": [r["expr"] for r in rules()]}
    for where, exprs in texts.items():
        for expr in exprs:
            for name in METRIC_NAME.findall(expr):
                assert name in known, f"{where}: {name} is not exported ({expr})"


@pytest.mark.parametrize(
    "metric",
    [
        "appliance_api_request_duration_seconds_count",  # request rate
        "appliance_api_request_duration_seconds_bucket",  # latency percentiles
        "appliance_api_time_to_first_token_seconds_bucket",
        "appliance_api_completion_tokens_total",  # tokens/s
        "appliance_api_upstream_errors_total",  # errors by replica
        "appliance_api_rate_limit_rejections_total",
        "appliance_audit_sink_lag_events",  # audit shipping lag
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
    ],
)
def test_the_dashboard_shows(metric: str) -> None:
    assert any(metric in expr for expr in dashboard_exprs()), metric


def test_the_dashboard_marks_the_seeds_thresholds() -> None:
    by_title = {p["title"]: p for p in dashboard()["panels"]}

    def steps(title: str) -> list[float]:
        config = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [s["value"] for s in config if s["value"] is not None]

    assert steps("Request latency percentiles") == [0.5]
    assert steps("GPU utilisation") == [90]
    assert steps("GPU memory used") == [80]  # 20 % headroom


# --- the role -------------------------------------------------------------------------------


def test_the_role_installs_a_valid_prometheus_and_grafana_setup(tmp_path: Path) -> None:
    playbook_bin = require("ansible-playbook", hint="install ansible-core (make .venv/.test)")
    require("promtool")
    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "gw-1": {"ansible_host": "10.0.0.11", "ansible_connection": "local"},
                        "gpu-1": {"ansible_host": "10.0.0.21", "ansible_connection": "local"},
                    },
                    "children": {
                        "appliance_gateway": {"hosts": {"gw-1": {}}},
                        "gpu_nodes": {"hosts": {"gpu-1": {}}},
                    },
                }
            }
        )
    )
    (tmp_path / "play.yml").write_text(
        "- name: Apply the observability role\n  hosts: gw-1\n  gather_facts: false\n"
        "  roles:\n    - role: observability\n"
    )
    variables = {
        "ansible_python_interpreter": str(Path(playbook_bin).parent / "python"),
        "observability_node_exporter_enabled": False,
        "observability_prometheus_install": False,
        "observability_grafana_install": False,
        "observability_service_manage": False,
        "observability_promtool": require("promtool"),
        "observability_prometheus_config_dir": str(tmp_path / "prometheus"),
        "observability_grafana_provisioning_dir": str(tmp_path / "grafana" / "provisioning"),
        "observability_grafana_dashboards_dir": str(tmp_path / "grafana" / "dashboards"),
        "appliance_metrics_port": 9199,
        "observability_alertmanagers": ["am-1:9093"],
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\nroles_path = {ANSIBLE / 'roles'}\nhome = {tmp_path / 'ansible-home'}\n"
        f"local_tmp = {tmp_path / 'ansible-tmp'}\nretry_files_enabled = false\n"
    )
    result = subprocess.run(
        ["env", f"ANSIBLE_CONFIG={tmp_path / 'ansible.cfg'}", playbook_bin,
         "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"),
         "-e", f"@{tmp_path / 'vars.json'}"],
        capture_output=True, text=True, timeout=timing.scaled(120), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    config_path = tmp_path / "prometheus" / "prometheus.yml"
    check = promtool("check", "config", str(config_path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout  # the rule file it points at
    config = yaml.safe_load(config_path.read_text())
    assert config["global"]["scrape_interval"] == "15s"  # the GPU alert's sample period
    assert config["global"]["evaluation_interval"] == "15s"
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs["appliance-api"] == ["10.0.0.11:9199"]  # follows appliance_metrics_port
    assert jobs["dcgm"] == ["10.0.0.21:9400"]
    assert sorted(jobs["node"]) == ["10.0.0.11:9101", "10.0.0.21:9101"]
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["am-1:9093"]
    rules_copy = tmp_path / "prometheus" / "rules" / RULES.name
    assert rules_copy.read_text() == RULES.read_text()

    grafana = tmp_path / "grafana"
    datasource = yaml.safe_load((grafana / "provisioning/datasources/appliance.yml").read_text())
    assert datasource["datasources"][0]["uid"] == DATASOURCE_UID
    provider = yaml.safe_load((grafana / "provisioning/dashboards/appliance.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(grafana / "dashboards")
    assert (grafana / "dashboards" / DASHBOARD.name).read_text() == DASHBOARD.read_text()
    shared = yaml.safe_load(PROVIDER.read_text())
    assert shared["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/appliance"
