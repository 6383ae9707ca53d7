"""The audit trail's Elasticsearch, Kibana and Filebeat services and Kibana's saved objects
agree with the shipper: every field a search, visualisation or dashboard uses is in the
index template, and every writer is least-privileged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance.audit.elastic import MAPPINGS
from appliance.config import load_settings
from tests.deploy.test_deploy_files import (
    COMPOSE,
    SECRET_WORDS,
    SETTINGS,
    _environment,
    _load,
    _services,
)

OBJECTS = COMPOSE / "kibana" / "appliance-audit.ndjson"
ELK = COMPOSE / "compose.yaml"


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in OBJECTS.read_text(encoding="utf-8").splitlines()]


def mapped_fields(properties: dict[str, Any] = MAPPINGS["properties"], prefix: str = "") -> set:
    fields = set()
    for name, spec in properties.items():
        fields.add(prefix + name)
        if "properties" in spec:
            fields |= mapped_fields(spec["properties"], f"{prefix}{name}.")
    return fields


def test_saved_objects_are_whole_and_their_references_resolve() -> None:
    objects = saved_objects()
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    for obj in objects:
        assert set(obj) >= {"type", "id", "attributes", "references"}
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{obj['id']}: {ref}"
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {ref["name"] for ref in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == names and len(panels) >= 8


def test_every_field_used_is_mapped_and_the_data_view_matches_the_stream() -> None:
    fields = mapped_fields()
    used = set()
    for obj in saved_objects():
        attributes = obj["attributes"]
        used |= set(attributes.get("columns", []))
        if "visState" in attributes:
            for agg in json.loads(attributes["visState"])["aggs"]:
                if "field" in agg["params"]:
                    used.add(agg["params"]["field"])
        source = attributes.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if source:
            query = json.loads(source)["query"]["query"]
            used |= {term.split(":")[0] for term in query.split() if ":" in term}
    assert used and used <= fields, used - fields
    (view,) = [o for o in saved_objects() if o["type"] == "index-pattern"]
    stream = load_settings(home="/nonexistent").audit_data_stream
    prefix = view["attributes"]["title"].removesuffix("*")
    assert stream.startswith(prefix) and view["attributes"]["timeFieldName"] == "@timestamp"


def test_the_stack_ships_as_least_privileged_users_with_secrets_from_files() -> None:
    services = _services(ELK)
    for name, service in services.items():
        for var, value in _environment(service).items():
            if (
                any(word in var.upper() for word in SECRET_WORDS)
                and var != "ELASTICSEARCH_USERNAME"
            ):
                assert var.endswith("_FILE") and value.startswith("/run/secrets/"), (name, var)
            if var.startswith("APPLIANCE_"):
                assert var.removeprefix("APPLIANCE_").removesuffix("_FILE").lower() in SETTINGS
    worker = _environment(services["worker"])
    assert worker["APPLIANCE_ELASTICSEARCH_USERNAME"] == "appliance-audit"
    for secret in _load(ELK)["secrets"].values():
        assert set(secret) == {"file"}
    assert worker["APPLIANCE_ELASTICSEARCH_PASSWORD_FILE"] == (
        "/run/secrets/elasticsearch_appliance_password"
    )
    assert services["worker"]["depends_on"]["elasticsearch-setup"]["condition"] == (
        "service_completed_successfully"
    )
    setup = (COMPOSE / "kibana" / "elasticsearch-setup.sh").read_text()
    assert '"create_doc"' in setup and '"delete' not in setup and '"write"' not in setup
    for role in ("appliance_audit_writer", "appliance_gateway_log_writer"):
        body = setup.split(f"/_security/role/{role} '", 1)[1].split("}'", 1)[0]
        assert '"all"' not in body and '"manage"' not in body and "create_doc" in body, role
    assert '"names": ["logs-appliance.gateway-*"]' in setup
    assert "FILEBEAT_PASSWORD_FILE" in _environment(services["elasticsearch-setup"])


def test_filebeat_ships_nginx_logs_as_its_own_user() -> None:
    services = _services(ELK)
    filebeat = services["filebeat"]
    assert "nginx-logs:/var/log/nginx:ro" in filebeat["volumes"]
    assert "nginx-logs:/var/log/nginx" in services["nginx"]["volumes"]
    assert filebeat["secrets"] == ["elasticsearch_filebeat_password"]
    assert "/run/secrets/elasticsearch_filebeat_password" in filebeat["command"][0]
    config = _load(COMPOSE / "filebeat" / "filebeat.yml")
    output = config["output.elasticsearch"]
    assert output["username"] == "filebeat-gateway" and output["password"] == "${ES_PASSWORD}"
    assert output["index"].startswith("logs-appliance.gateway-")
    assert {i["paths"][0] for i in config["filebeat.inputs"]} == {
        "/var/log/nginx/access.log",
        "/var/log/nginx/error.log",
    }
    # The audit trail is the worker's to ship (hash-chained); Filebeat never reads it.
    assert "audit" not in json.dumps(config["filebeat.inputs"])


@pytest.mark.parametrize("script", sorted((COMPOSE / "kibana").glob("*.sh")), ids=lambda p: p.name)
def test_setup_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
