"""compose/: `docker-compose config` accepts the stack with each profile, every service of
the single-host stack is there, secrets come only from files, the observability files are
the role's own (one copy), and nginx's configuration is the nginx role's templates
rendered for the stack.

Regenerate compose/nginx/ after changing the role's templates:
    .venv/bin/python -m tests.deploy.test_compose --write
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from tests.deploy.test_deploy_files import ANSIBLE, COMPOSE, ROOT, SECRET_WORDS, _load
from tests.deploy.tools import require

STACK = COMPOSE / "compose.yaml"
DEMO = COMPOSE / "compose.cpu-demo.yaml"
NGINX_ROLE = ANSIBLE / "roles" / "nginx"
OBSERVABILITY_FILES = ANSIBLE / "roles" / "observability" / "files"

ALWAYS = {
    "postgres", "redis", "init", "api", "portal", "worker", "beat", "nginx",
    "elasticsearch", "elasticsearch-setup", "kibana", "kibana-objects", "filebeat",
    "prometheus", "grafana", "node-exporter",
}  # fmt: skip
PROFILES = {"gpu": {"vllm", "dcgm-exporter", "trainer"}, "cpu": {"engine", "trainer-cpu"}}

# The nginx role's variables for the stack: container paths of the official nginx image,
# the certificate from compose secrets, the upstreams by service name.
COMPOSE_NGINX_VARS: dict[str, Any] = {
    "nginx_conf_dir": "/etc/nginx",
    "nginx_mime_types": "/etc/nginx/mime.types",
    "nginx_modules_include": "",
    "nginx_run_as": "nginx",
    "nginx_pid_file": "/var/run/nginx.pid",
    "nginx_log_dir": "/var/log/nginx",
    "nginx_temp_dir": "/var/cache/nginx",
    "nginx_server_name": "_",
    "nginx_listen_address": "0.0.0.0",
    "nginx_listen_port": 443,
    "nginx_redirect_http_port": None,
    "nginx_portal_listen_address": "0.0.0.0",  # published on DEPLOY_PORTAL_PUBLISH only
    "nginx_portal_listen_port": 8443,
    "nginx_api_upstream_host": "api",
    "nginx_portal_upstream_host": "portal",
    "nginx_tls_certificate": "/run/secrets/tls_certificate",
    "nginx_tls_certificate_key": "/run/secrets/tls_certificate_key",
}
GENERATED = "Rendered from ansible/roles/nginx/templates/{name} by tests/deploy/test_compose.py"


def render_compose_nginx() -> dict[Path, str]:
    """The role's two templates, rendered the way Ansible does (trim_blocks) with the
    role's defaults and vars and COMPOSE_NGINX_VARS."""
    env = jinja2.Environment(  # noqa: S701  (nginx configuration, not HTML)
        undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True
    )
    env.filters["bool"] = lambda value: str(value).lower() in {"true", "yes", "1", "on"}
    raw: dict[str, Any] = (
        _load(NGINX_ROLE / "defaults" / "main.yml")
        | _load(NGINX_ROLE / "vars" / "main.yml")
        | COMPOSE_NGINX_VARS
    )

    def resolve(value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, str) and "{" in value:
            return env.from_string(value).render(context)
        if isinstance(value, list):
            return [resolve(item, context) for item in value]
        return value

    context = dict(raw)
    for _ in range(6):  # variables refer to variables
        context = {name: resolve(value, context) for name, value in raw.items()}
    rendered = {}
    for name, target in (
        ("nginx.conf.j2", COMPOSE / "nginx" / "nginx.conf"),
        ("appliance.conf.j2", COMPOSE / "nginx" / "conf.d" / "appliance.conf"),
    ):
        template = (NGINX_ROLE / "templates" / name).read_text(encoding="utf-8")
        managed = {"ansible_managed": GENERATED.format(name=name) + "; do not edit."}
        rendered[target] = env.from_string(template).render(context | managed)
    return rendered


@functools.cache
def compose_config(*args: str, path: Path = STACK) -> dict[str, Any]:
    """`docker-compose config` of ``path``. Debian's docker-compose (1.29) predates the
    Compose specification's top-level `name`: that one key is taken out before it reads
    the file (and checked separately); everything else is validated as written."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data.pop("name", None), str), f"{path.name} has no project name"
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / path.name
        copy.write_text(yaml.safe_dump(data, sort_keys=False))
        result = subprocess.run(
            [require("docker-compose"), "--project-directory", str(COMPOSE), "-f", str(copy),
             *args, "config"],
            capture_output=True, text=True, cwd=COMPOSE, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"docker-compose config {' '.join(args)}:\n{result.stderr}"
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


# --- docker-compose config ----------------------------------------------------------------


@pytest.mark.parametrize("profile", [None, "gpu", "cpu"])
def test_compose_config_accepts_the_stack(profile: str | None) -> None:
    config = compose_config(*(["--profile", profile] if profile else []))
    services = config["services"]
    assert set(services) == ALWAYS | PROFILES["gpu"] | PROFILES["cpu"]
    for name, service in services.items():
        expected = next((p for p, names in PROFILES.items() if name in names), None)
        assert service.get("profiles") == ([expected] if expected else None), name


def test_compose_config_accepts_the_cpu_demo() -> None:
    config = compose_config(path=DEMO)
    assert set(config["services"]) == {"appliance"}


def test_project_names() -> None:
    assert _load(STACK)["name"] == "appliance"
    assert _load(DEMO)["name"] == "appliance-demo"


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_come_only_from_files() -> None:
    config = compose_config()
    declared = config["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"}, name
        assert Path(secret["file"]).parent == COMPOSE / "secrets", name
    for name, service in config["services"].items():
        for ref in service.get("secrets", []):
            source = ref["source"] if isinstance(ref, dict) else ref
            assert source in declared, f"{name} uses undeclared secret {source}"
        for var, value in (service.get("environment") or {}).items():
            if any(word in var.upper() for word in SECRET_WORDS):
                assert var.endswith("_FILE"), f"{name}: {var} holds a literal secret"
                assert str(value).startswith("/run/secrets/"), f"{name}: {var}"
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), f"{name}: {var}"


def test_no_secret_value_is_written_in_the_files() -> None:
    """Whatever the key, no literal password/secret/token/key value in the compose folder's
    configuration (secret files are git-ignored)."""
    files = [STACK, DEMO, *COMPOSE.glob("*/*.yml"), *COMPOSE.glob("nginx/**/*.conf")]
    literal = re.compile(
        r"(?i)^\s*[\w.\-]*(password|secret|token|api_?key)[\w.\-]*\s*[:=]\s*(?P<value>\S.*)$"
    )
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = literal.match(line)
            if match and not line.lstrip().startswith("#"):
                value = match.group("value").strip("'\"")
                assert value.startswith(
                    ("/run/secrets/", "${", "./secrets/", "$$(cat /run/secrets/")
                ), f"{path.relative_to(ROOT)}: {line.strip()}"
    assert "secrets/" in (COMPOSE / ".gitignore").read_text()


# --- shared files ------------------------------------------------------------------------------


def _bind_sources() -> dict[str, Path]:
    """Every file or folder of this repository that a service mounts, by container path."""
    mounts = {}
    for service in _load(STACK)["services"].values():
        for volume in service.get("volumes", []):
            source, _, rest = str(volume).partition(":")
            if source.startswith("."):
                mounts[rest.split(":")[0]] = (COMPOSE / source).resolve()
    return mounts


def test_every_mounted_file_exists() -> None:
    mounts = _bind_sources()
    assert mounts
    for target, source in mounts.items():
        assert source.exists(), f"{target} mounts {source}, which does not exist"


def test_prometheus_and_grafana_mount_the_roles_own_files() -> None:
    mounts = _bind_sources()
    assert mounts["/etc/prometheus/rules/appliance-alerts.yml"] == (
        OBSERVABILITY_FILES / "appliance-alerts.yml"
    )
    provider = OBSERVABILITY_FILES / "grafana-dashboards.yml"
    assert mounts["/etc/grafana/provisioning/dashboards/appliance.yml"] == provider
    dashboards_dir = yaml.safe_load(provider.read_text())["providers"][0]["options"]["path"]
    dashboard = OBSERVABILITY_FILES / "grafana-dashboard-appliance.json"
    assert mounts[f"{dashboards_dir}/{dashboard.name}"] == dashboard
    prometheus = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert prometheus["global"]["scrape_interval"] == "15s"  # the GPU alert's sample period
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["appliance-api"]["static_configs"][0]["targets"] == ["api:9100"]
    assert jobs["dcgm"]["dns_sd_configs"][0]["names"] == ["dcgm-exporter"]
    datasource = yaml.safe_load((COMPOSE / "grafana" / "datasource.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "appliance-prometheus"


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    """promtool check config, with the rules where the container has them."""
    promtool = require("promtool")
    text = (COMPOSE / "prometheus" / "prometheus.yml").read_text()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "appliance-alerts.yml").write_bytes(
        (OBSERVABILITY_FILES / "appliance-alerts.yml").read_bytes()
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", f"{rules}/"))
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_configuration_is_the_roles_templates_rendered() -> None:
    for path, text in render_compose_nginx().items():
        assert path.is_file(), f"{path} is missing: run python -m tests.deploy.test_compose --write"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} differs from the nginx role's templates: "
            "run .venv/bin/python -m tests.deploy.test_compose --write"
        )
    site = (COMPOSE / "nginx" / "conf.d" / "appliance.conf").read_text()
    assert "server api:8000 " in site and "server portal:8001 " in site
    assert "ssl_certificate /run/secrets/tls_certificate;" in site
    assert "ssl_protocols TLSv1.3;" in (COMPOSE / "nginx" / "nginx.conf").read_text()
    nginx = _load(STACK)["services"]["nginx"]
    assert set(nginx["secrets"]) == {"tls_certificate", "tls_certificate_key"}


def test_nginx_accepts_the_compose_configuration(tmp_path: Path) -> None:
    """`nginx -t` on compose/nginx/, with what exists only inside the stack swapped for
    local stand-ins: the image's worker account and directories, the certificate secret,
    the service names of the upstreams."""
    nginx = require("nginx")
    cert, key = tmp_path / "tls_certificate", tmp_path / "tls_certificate_key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=True,
    )  # fmt: skip
    swaps = {
        "user nginx;": "user root;" if os.getuid() == 0 else "",
        "/run/secrets/": f"{tmp_path}/",
        "server api:8000 ": "server 127.0.0.1:8000 ",
        "server portal:8001 ": "server 127.0.0.1:8001 ",
        "/var/log/nginx": str(tmp_path / "log"),
        "/var/cache/nginx": str(tmp_path / "cache"),
        "/var/run/nginx.pid": str(tmp_path / "nginx.pid"),
        "/etc/nginx/conf.d": str(tmp_path / "conf.d"),
    }
    (tmp_path / "log").mkdir()
    (tmp_path / "cache").mkdir()  # the image has /var/cache/nginx; nginx makes what is below
    (tmp_path / "conf.d").mkdir()
    for source, target in (
        (COMPOSE / "nginx" / "nginx.conf", tmp_path / "nginx.conf"),
        (COMPOSE / "nginx" / "conf.d" / "appliance.conf", tmp_path / "conf.d" / "appliance.conf"),
    ):
        text = source.read_text(encoding="utf-8")
        for old, local in swaps.items():
            text = text.replace(old, local)
        target.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_api_and_portal_are_reached_only_through_nginx() -> None:
    services = _load(STACK)["services"]
    assert "ports" not in services["api"] and "ports" not in services["portal"]
    published = [str(p) for p in services["nginx"]["ports"]]
    assert published == [
        "${DEPLOY_HTTPS_PUBLISH:-443}:443",
        "${DEPLOY_PORTAL_PUBLISH:-127.0.0.1:8443}:8443",
    ]
    env = services["api"]["environment"]
    assert env["APPLIANCE_SESSION_COOKIE_SECURE"] == "true"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.deploy.test_compose --write")
    for target, content in render_compose_nginx().items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")


def test_fine_tunes_hot_load_through_a_shared_tmpfs_volume() -> None:
    config = compose_config()
    services, volumes = config["services"], config["volumes"]
    assert volumes["adapters"]["driver_opts"]["type"] == "tmpfs"

    def mounts(name: str) -> set[str]:
        return {  # "source:target" whatever the mode
            f"{v['source']}:{v['target']}" if isinstance(v, dict) else ":".join(v.split(":")[:2])
            for v in services[name].get("volumes", [])
        }

    for trainer in ("trainer", "trainer-cpu"):
        assert "adapters:/adapters" in mounts(trainer)
        assert services[trainer]["environment"]["APPLIANCE_VAULT_TMPFS_DIR"] == "/adapters"
        command = services[trainer]["command"]
        assert command[command.index("-Q") + 1] == "train"
    worker = services["worker"]["command"]
    assert worker[worker.index("-Q") + 1] == "celery"  # training stays off the main worker
    for server in ("vllm", "engine"):
        assert "adapters:/adapters" in mounts(server)
    assert services["vllm"]["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "--enable-lora" in services["vllm"]["command"]
    assert "--allow-runtime-lora-updating" in " ".join(services["engine"]["command"])
