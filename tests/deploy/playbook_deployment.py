"""A real deployment of ansible/site.yml on this machine, for the playbook tests.

The single inventory is used as IT admins use it, with extra variables (playbook_vars)
that move everything out of the way of the machine's own services and the other tests:
its own user, home, ports, PostgreSQL database, Redis instance and nginx instance, and
units that are installed but not started (no systemd runs here). The processes are then
started from the rendered units' own command lines (UnitProcesses).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import timing

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
WHEELHOUSE = ROOT / "wheelhouse"
ARTIFACTS = ROOT / "test-artifacts" / "deploy"
BIN = ROOT / ".venv" / "bin"

NAME = "appliance-e2e"
USER = NAME
HOME = Path("/var/lib/appliance-e2e")
INSTALL_DIR = Path("/opt/appliance-e2e")
CONFIG_DIR = Path("/etc/appliance-e2e")
MODELS_SRC = Path("/opt/appliance-e2e-models")
UNIT_DIR = Path("/etc/systemd/system")
NGINX_DIR = Path("/etc/nginx-appliance-e2e")
ELK_DIR = Path("/etc/appliance-e2e-elk")
FILEBEAT_CONFIG = Path("/etc/appliance-e2e-filebeat/filebeat.yml")
REDIS_CONF = Path(f"/etc/redis/redis-{NAME}.conf")
VLLM_KEY_FILE = Path(f"/etc/{NAME}-vllm/api-key.env")
DATABASE = "appliance_e2e"
API_PORT, PORTAL_PORT, ENGINE_PORT, METRICS_PORT = 18000, 18001, 18100, 19100
REDIS_PORT, NGINX_PORT, NGINX_PORTAL_PORT = 16379, 18443, 18444
VLLM_MODEL = "deepseek-e2e"


def playbook_vars() -> dict[str, Any]:
    """What the test sets on top of inventories/single (extra variables win)."""
    db_url = (
        f"postgresql+psycopg://{DATABASE}:{{{{ vault_appliance_db_password | urlencode }}}}"
        f"@127.0.0.1:5432/{DATABASE}"
    )
    redis = f"redis://:{{{{ vault_redis_password | urlencode }}}}@127.0.0.1:{REDIS_PORT}"
    return {
        # common
        "common_manage_services": False,
        "common_ntp_servers": ["ntp.e2e.invalid"],
        "common_chrony_sources_file": f"/etc/chrony/sources.d/{NAME}.sources",
        "common_sysctl_file": f"/etc/sysctl.d/60-{NAME}.conf",
        # postgresql: the running server (trust on 127.0.0.1), its own role and database
        "postgresql_manage_service": False,
        "postgresql_admin_host": "127.0.0.1",
        "postgresql_settings": {"listen_addresses": "127.0.0.1"},
        "postgresql_users": [{"name": DATABASE, "password": "{{ vault_appliance_db_password }}"}],
        "postgresql_databases": [{"name": DATABASE, "owner": DATABASE}],
        # redis: an instance of its own, on its own port
        "redis_instance": NAME,
        "redis_port": REDIS_PORT,
        "redis_manage_service": False,
        "redis_data_dir": f"/var/lib/redis-{NAME}",
        # appliance
        "appliance_user": USER,
        "appliance_group": USER,
        "appliance_home": str(HOME),
        "appliance_install_dir": str(INSTALL_DIR),
        "appliance_config_dir": str(CONFIG_DIR),
        "appliance_unit_prefix": NAME,
        "appliance_start_services": False,
        "appliance_initial_password_file": f"/root/{NAME}-initial-admin-password",
        "appliance_api_port": API_PORT,
        "appliance_portal_port": PORTAL_PORT,
        "appliance_engine_base_port": ENGINE_PORT,
        "appliance_metrics_port": METRICS_PORT,
        "appliance_database_url": db_url,
        "appliance_broker_url": f"{redis}/0",
        "appliance_redis_url": f"{redis}/1",
        "appliance_api_workers": 1,
        "appliance_worker_concurrency": 1,
        "appliance_models": [
            {
                "name": "tiny",
                "engine": "builtin",
                "port": ENGINE_PORT,
                "import_from": str(MODELS_SRC / "tiny"),
            },
            {
                "name": VLLM_MODEL,
                "engine": "vllm",
                "port": 18200,
                "tensor_parallel_size": 2,
                "quantization": "awq",
                "max_model_len": 4096,
                "lora": {"max_loras": 4, "max_lora_rank": 16},
            },
        ],
        # vllm: no GPU and no vLLM wheel here; its units are rendered, not started
        "vllm_require_gpu": False,
        "vllm_install": False,
        "vllm_start_services": False,
        "vllm_user": USER,
        "vllm_group": USER,
        "vllm_appliance_command": f"{INSTALL_DIR}/venv/bin/appliance",
        "vllm_appliance_home": str(HOME),
        "vllm_unseal_root": f"/dev/shm/{NAME}-vllm",
        "vllm_api_key_file": str(VLLM_KEY_FILE),
        # nginx: an instance of its own, run by the test
        "nginx_service_manage": False,
        "nginx_conf_dir": str(NGINX_DIR),
        "nginx_pid_file": f"/run/nginx-{NAME}.pid",
        "nginx_log_dir": f"/var/log/nginx-{NAME}",
        "nginx_temp_dir": f"/var/lib/nginx-{NAME}",
        "nginx_server_name": "localhost",
        "nginx_listen_address": "127.0.0.1",
        "nginx_listen_port": NGINX_PORT,
        "nginx_portal_listen_port": NGINX_PORTAL_PORT,
        "nginx_redirect_http_port": None,
        # elk: Filebeat configured (no Elastic repository here to install it from)
        "elk_audit_shipper": "filebeat",
        "elk_filebeat_install": False,
        "elk_manage_services": False,
        "elk_files_dir": str(ELK_DIR),
        "elk_filebeat_config_file": str(FILEBEAT_CONFIG),
        "elk_filebeat_data_dir": f"/var/lib/{NAME}-filebeat",
        "elk_filebeat_log_dir": f"/var/log/{NAME}-filebeat",
        "elk_elasticsearch_hosts": ["http://127.0.0.1:19200"],
        # observability: configuration written and checked; nothing installed or started
        # (Grafana is not in Debian's archive; no init system runs here)
        "observability_service_manage": False,
        "observability_node_exporter_enabled": False,
        "observability_grafana_install": False,
        "observability_prometheus_config_dir": f"/etc/prometheus-{NAME}",
        "observability_grafana_provisioning_dir": f"/etc/grafana-{NAME}/provisioning",
        "observability_grafana_dashboards_dir": f"/var/lib/grafana-{NAME}/dashboards",
    }


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def reset_machine(*, fresh_venv: bool) -> None:
    """Remove what an earlier run deployed (the virtualenv only when fresh_venv)."""
    paths = [HOME, CONFIG_DIR, NGINX_DIR, ELK_DIR, FILEBEAT_CONFIG.parent, REDIS_CONF]
    paths.append(VLLM_KEY_FILE.parent)
    paths += [Path(f"/etc/prometheus-{NAME}"), Path(f"/etc/grafana-{NAME}")]
    paths += [Path(f"/var/lib/grafana-{NAME}")]
    paths += [Path(f"/var/lib/redis-{NAME}"), Path(f"/var/lib/nginx-{NAME}")]
    paths += [*UNIT_DIR.glob(f"{NAME}-*.service"), UNIT_DIR / f"vllm-{VLLM_MODEL}.service"]
    if fresh_venv:
        paths.append(INSTALL_DIR)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAtc"]
    _run([*psql, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"])
    _run([*psql, f"DROP ROLE IF EXISTS {DATABASE}"])


def make_model_source() -> Path:
    """A tiny model directory the role seals into the vault (readable by the user)."""
    tiny = MODELS_SRC / "tiny"
    if not (tiny / "config.json").is_file():
        shutil.rmtree(tiny, ignore_errors=True)
        _run([str(BIN / "appliance"), "model", "make-tiny", str(tiny)])
    _run(["chmod", "-R", "a+rX", str(MODELS_SRC)])
    return tiny


@dataclass
class Workspace:
    """The files a playbook run reads: extra variables, vaulted secrets and the password."""

    directory: Path
    vars_file: Path = field(init=False)
    secrets_file: Path = field(init=False)
    password_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.vars_file = self.directory / "e2e-vars.yml"
        self.secrets_file = self.directory / "e2e-secrets.yml"
        self.password_file = self.directory / "vault-password"
        self.vars_file.write_text(yaml.safe_dump(playbook_vars()), encoding="utf-8")
        self.password_file.write_text(secrets.token_hex(16), encoding="utf-8")
        self.password_file.chmod(0o600)
        values = {
            name: secrets.token_hex(24)
            for name in (
                "vault_appliance_db_password",
                "vault_redis_password",
                "vault_appliance_secret_key",
                "vault_appliance_engine_key",
                "vault_elk_writer_password",
            )
        }
        self.secrets_file.write_text(yaml.safe_dump(values), encoding="utf-8")
        _run(
            [
                str(BIN / "ansible-vault"),
                "encrypt",
                "--vault-password-file",
                str(self.password_file),
                str(self.secrets_file),
            ],
            env=ansible_env(),
        )


def ansible_env() -> dict[str, str]:
    """The environment of ansible-playbook: no pip configuration, no package index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "APPLIANCE_"))}
    env |= {
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        # Any pip that ignored the wheelhouse would fail: no configuration, a dead index.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    }
    return env


@dataclass
class PlaybookRun:
    transcript: str
    seconds: float
    returncode: int

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counts per host."""
        found: dict[str, dict[str, int]] = {}
        section = self.transcript.split("PLAY RECAP", 1)[-1]
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", section, flags=re.M):
            found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        return found


def run_playbook(workspace: Workspace, transcript: Path) -> PlaybookRun:
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        "inventories/single/hosts.yml",
        "site.yml",
        "-e",
        f"@{workspace.vars_file}",
        "-e",
        f"@{workspace.secrets_file}",
        "--vault-password-file",
        str(workspace.password_file),
    ]
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=ANSIBLE, env=ansible_env(), capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    text = (
        f"$ cd ansible && {shlex.join(['ansible-playbook', *argv[1:]])}\n{done.stdout}{done.stderr}"
    )
    text += f"\n# exit status {done.returncode}, {seconds:.1f} s\n"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text(text, encoding="utf-8")
    return PlaybookRun(text, seconds, done.returncode)


# --- starting what the units start ----------------------------------------------------


@dataclass
class Unit:
    """The parts of a systemd service unit a process needs."""

    path: Path
    directives: dict[str, list[str]]

    @classmethod
    def read(cls, path: Path, instance: str = "") -> Unit:
        directives: dict[str, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
                key, value = line.split("=", 1)
                directives.setdefault(key.strip(), []).append(value.strip().replace("%i", instance))
        return cls(path, directives)

    def one(self, key: str, default: str = "") -> str:
        return self.directives.get(key, [default])[-1]

    def environment(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for item in self.directives.get("Environment", []):
            for assignment in shlex.split(item):
                key, value = assignment.split("=", 1)
                env[key] = value
        return env


class UnitProcesses:
    """Start units' ExecStartPre and ExecStart as systemd would (user, environment,
    directory, umask), and stop them all, ExecStopPost included."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[tuple[Unit, subprocess.Popen[bytes]]] = []

    def _kwargs(self, unit: Unit) -> dict[str, Any]:
        user = unit.one("User", "root")
        return {
            "user": user,
            "group": unit.one("Group", user),
            "extra_groups": [],
            "env": unit.environment(),
            "cwd": unit.one("WorkingDirectory", "/"),
            "umask": int(unit.one("UMask", "0022"), 8),
        }

    def run_once(self, unit: Unit, command: str) -> None:
        log = self.log_dir / f"{unit.path.stem}.log"
        with log.open("ab") as out:
            subprocess.run(
                shlex.split(command), check=True, stdout=out, stderr=out, **self._kwargs(unit)
            )

    def output(self, unit: Unit, argv: list[str]) -> str:
        """A command run as the unit's processes run (user, environment, directory)."""
        done = subprocess.run(argv, check=True, capture_output=True, **self._kwargs(unit))
        return done.stdout.decode()

    def start(self, unit: Unit, command: str | None = None) -> subprocess.Popen[bytes]:
        for pre in unit.directives.get("ExecStartPre", []):
            self.run_once(unit, pre.lstrip("-"))
        log = (self.log_dir / f"{unit.path.stem}.log").open("ab")
        process = subprocess.Popen(
            shlex.split(command or unit.one("ExecStart")),
            stdout=log,
            stderr=log,
            start_new_session=True,
            **self._kwargs(unit),
        )
        log.close()
        self.started.append((unit, process))
        return process

    def stop_all(self) -> None:
        for unit, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timing.scaled(20))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            for post in unit.directives.get("ExecStopPost", []):
                self.run_once(unit, post.lstrip("-"))
        self.started.clear()
