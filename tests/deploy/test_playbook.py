"""ansible/site.yml for real: run twice against this machine with the single inventory,
then start what the rendered units start and send a chat completion through nginx (TLS
1.3) to the API app and the built-in engine.

Needs root, the wheelhouse (`make wheelhouse`), sudo, nginx and chrony (`make
deploy-tools`), PostgreSQL on 127.0.0.1 with trust for postgres. Without them the tests
fail under CI=true (`make test` provides them all) and are skipped elsewhere.
Set APPLIANCE_TEST_DEPLOY_FRESH=1 to also remove the deployed virtualenv first (by
default it is kept between sessions; the appliance's wheel is reinstalled whenever it
changed).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import timing
from tests.deploy import playbook_deployment as deploy
from tests.deploy.tools import find, missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def unmet_requirements() -> list[str]:
    """What this machine lacks for the playbook run, each with how to get it."""
    requirements = {
        "root": os.geteuid() == 0,
        "the wheelhouse (make wheelhouse)": any(deploy.WHEELHOUSE.glob("appliance-*.whl")),
        "sudo, nginx, chrony (make deploy-tools)": all(
            find(tool) for tool in ("sudo", "nginx", "chronyd")
        ),
        "ansible-playbook (the test extra: make .venv/.test)": (
            deploy.BIN / "ansible-playbook"
        ).exists(),
    }
    return [name for name, ok in requirements.items() if not ok]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[deploy.PlaybookRun]:
    unmet = unmet_requirements()
    if unmet:
        missing(f"the playbook test needs {', '.join(unmet)}")
    deploy.reset_machine(fresh_venv=os.environ.get("APPLIANCE_TEST_DEPLOY_FRESH") == "1")
    deploy.make_model_source()
    workspace = deploy.Workspace(tmp_path_factory.mktemp("playbook"))
    done = []
    for number in (1, 2):
        run = deploy.run_playbook(workspace, deploy.ARTIFACTS / f"playbook-run-{number}.log")
        assert run.returncode == 0, run.transcript[-6000:]
        done.append(run)
    return done


def test_the_first_run_installs_and_the_second_changes_nothing(
    runs: list[deploy.PlaybookRun],
) -> None:
    first, second = (run.recap()["appliance-1"] for run in runs)
    assert first["failed"] == 0 and first["changed"] > 10, first
    assert second["failed"] == 0 and second["unreachable"] == 0, second
    assert second["changed"] == 0, [
        line for line in runs[1].transcript.splitlines() if line.startswith("changed:")
    ]


def test_no_secret_reaches_the_transcript(runs: list[deploy.PlaybookRun]) -> None:
    # The vault's values are random per session; none is printed by any task.
    transcript = "".join(run.transcript for run in runs)
    settings = (deploy.CONFIG_DIR / "appliance.yaml").read_text(encoding="utf-8")
    password = settings.split("secret_key: ", 1)[1].splitlines()[0].strip('"')
    assert len(password) == 48
    assert password not in transcript
    engine_key = (deploy.HOME / "keys" / "engine.key").read_text(encoding="ascii").strip()
    assert len(engine_key) == 48  # the vault's value, not the one `appliance init` made
    assert engine_key not in transcript


def test_files_and_modes(runs: list[deploy.PlaybookRun]) -> None:
    assert (deploy.HOME.stat().st_mode & 0o777) == 0o700
    assert (deploy.HOME / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    engine_key = deploy.HOME / "keys" / "engine.key"
    assert engine_key.stat().st_mode & 0o777 == 0o600
    assert engine_key.owner() == deploy.USER
    # vLLM's copy: root's, read by systemd; the same key, as VLLM_API_KEY.
    assert deploy.VLLM_KEY_FILE.stat().st_mode & 0o777 == 0o600
    assert deploy.VLLM_KEY_FILE.owner() == "root"
    vllm_env = deploy.VLLM_KEY_FILE.read_text(encoding="ascii")
    assert vllm_env == f"VLLM_API_KEY={engine_key.read_text(encoding='ascii').strip()}\n"
    assert (deploy.CONFIG_DIR / "appliance.yaml").stat().st_mode & 0o777 == 0o640
    assert deploy.REDIS_CONF.stat().st_mode & 0o777 == 0o640
    assert deploy.FILEBEAT_CONFIG.stat().st_mode & 0o777 == 0o600
    assert "vm.swappiness = 1" in Path(f"/etc/sysctl.d/60-{deploy.NAME}.conf").read_text()
    assert Path("/proc/sys/vm/swappiness").read_text().strip() == "1"
    filebeat = deploy.FILEBEAT_CONFIG.read_text(encoding="utf-8")
    assert f'"{deploy.HOME}/logs/audit.jsonl"' in filebeat
    assert "document_id: event.id" in filebeat
    units = sorted(p.name for p in deploy.UNIT_DIR.glob(f"{deploy.NAME}-*.service"))
    assert units == [
        f"{deploy.NAME}-{name}.service"
        for name in ("api", "beat", "engine-tiny", "portal", "worker")
    ]


def test_the_vllm_unit_is_derived_from_the_model_registry(
    runs: list[deploy.PlaybookRun],
) -> None:
    unit = deploy.Unit.read(deploy.UNIT_DIR / f"vllm-{deploy.VLLM_MODEL}.service")
    start = unit.one("ExecStart")
    for flag in (
        "--tensor-parallel-size 2",
        "--quantization awq",
        "--max-model-len 4096",
        "--enable-lora --max-loras 4 --max-lora-rank 16",
        f"--served-model-name {deploy.VLLM_MODEL} --host 127.0.0.1 --port 18200",
    ):
        assert flag in start
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in unit.directives["Environment"]
    assert unit.directives["EnvironmentFile"] == [str(deploy.VLLM_KEY_FILE)]
    assert "--api-key" not in start and "VLLM_API_KEY" not in " ".join(
        unit.directives["Environment"]
    )
    model_dir = f"/dev/shm/{deploy.NAME}-vllm/{deploy.VLLM_MODEL}"
    assert unit.directives["ExecStartPre"][-1].endswith(
        f"vault unseal {deploy.VLLM_MODEL} --to {model_dir}"
    )
    assert unit.directives["ExecStopPost"][0].endswith(f"vault wipe {model_dir}")


@pytest.fixture(scope="module")
def running(runs: list[deploy.PlaybookRun]) -> Iterator[deploy.UnitProcesses]:
    processes = deploy.UnitProcesses(deploy.ARTIFACTS / "units")
    try:
        redis_unit = deploy.Unit.read(
            Path("/lib/systemd/system/redis-server@.service"), deploy.NAME
        )
        Path(f"/run/redis-{deploy.NAME}").mkdir(exist_ok=True)
        shutil.chown(f"/run/redis-{deploy.NAME}", "redis", "redis")
        processes.start(redis_unit)
        nginx_unit = deploy.Unit.read(Path("/lib/systemd/system/nginx.service"))
        conf = deploy.NGINX_DIR / "nginx.conf"
        # Debian's unit, on the role's file, in the foreground.
        command = nginx_unit.one("ExecStart").replace("daemon on;", "daemon off;")
        processes.start(nginx_unit, command.replace("nginx ", f"nginx -c {conf} ", 1))
        for name in ("engine-tiny", "api", "portal", "worker", "beat"):
            processes.start(deploy.Unit.read(deploy.UNIT_DIR / f"{deploy.NAME}-{name}.service"))
        yield processes
    finally:
        processes.stop_all()


def _tls13() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(deploy.NGINX_DIR / "tls" / "localhost.crt"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def _wait(url: str, context: ssl.SSLContext, timeout_s: float = 120.0) -> None:
    deadline = timing.deadline(timeout_s)
    while True:
        try:
            if httpx.get(url, verify=context, timeout=timing.scaled(5)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200"
        time.sleep(1)


def test_a_chat_completion_passes_nginx_the_api_and_the_engine(
    running: deploy.UnitProcesses,
) -> None:
    context = _tls13()
    base = f"https://localhost:{deploy.NGINX_PORT}"
    _wait(f"{base}/healthz", context)
    # Ready as far as the tiny model goes; the vLLM model has no GPU server here.
    deadline = timing.deadline(120)
    while True:
        ready = httpx.get(f"{base}/readyz", verify=context, timeout=timing.scaled(5)).json()[
            "checks"
        ]
        if ready["database"] == "ok" and ready["upstreams"]["tiny"] == "ok":
            break
        assert time.monotonic() < deadline, ready
        time.sleep(1)
    assert ready["rate_limits"]["mode"] == "redis"  # the redis role's instance
    assert ready["upstreams"][deploy.VLLM_MODEL].startswith("unreachable")
    api_unit = deploy.Unit.read(deploy.UNIT_DIR / f"{deploy.NAME}-api.service")
    cli = f"{deploy.INSTALL_DIR}/venv/bin/appliance"
    created = running.output(
        api_unit,
        [cli, "key", "create", "--user", "admin", "--name", f"e2e-{time.time_ns()}"],
    )
    key = created.strip().splitlines()[-1]
    with httpx.Client(verify=context, timeout=timing.scaled(120)) as client:
        response = client.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": "tiny",
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 8,
            },
        )
        tls = response.extensions["network_stream"].get_extra_info("ssl_object").version()
    assert tls == "TLSv1.3"
    assert response.status_code == 200, response.text
    # The gateway sent the engine key; nobody else gets past the engine's /health.
    direct = httpx.post(
        f"http://127.0.0.1:{deploy.ENGINE_PORT}/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=timing.scaled(30),
    )
    assert direct.status_code == 401, direct.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    request_id = response.headers["x-request-id"]
    # The portal answers through its own TLS listener.
    _wait(f"https://localhost:{deploy.NGINX_PORTAL_PORT}/healthz", context)
    # Celery beat seals the call's audit event and writes it to the file Filebeat ships.
    audit = deploy.HOME / "logs" / "audit.jsonl"
    deadline = timing.deadline(60)
    while True:
        lines = audit.read_text().splitlines() if audit.exists() else []
        events = [json.loads(line) for line in lines]
        if any(e.get("http", {}).get("request", {}).get("id") == request_id for e in events):
            break
        assert time.monotonic() < deadline, "the chat completion's audit event never arrived"
        time.sleep(1)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_the_vllm_role_refuses_a_node_without_the_nvidia_driver(tmp_path: Path) -> None:
    """Before anything is installed: no nvidia-smi here, so the role stops and says why."""
    if not (deploy.BIN / "ansible-playbook").exists():
        missing("the vLLM role test needs ansible-playbook (the test extra: make .venv/.test)")
    playbook = tmp_path / "gpu.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  vars:\n"
        "    ansible_python_interpreter: /usr/bin/python3\n"
        "    vllm_models: [{name: m, port: 18299, tensor_parallel_size: 2}]\n"
        "  roles: [vllm]\n",
        encoding="utf-8",
    )
    env = deploy.ansible_env() | {"ANSIBLE_ROLES_PATH": str(deploy.ANSIBLE / "roles")}
    done = subprocess.run(
        [str(deploy.BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "install the NVIDIA driver" in done.stdout + done.stderr
    assert "changed=0" in done.stdout


def test_the_vllm_role_writes_its_key_root_only_and_refuses_to_run_without_one(
    tmp_path: Path,
) -> None:
    """The vllm role alone, nothing installed or started: without vllm_api_key it stops
    before writing anything; with it, the key is a root-only environment file the unit
    names, vLLM's command line does not carry it, and a second run changes nothing."""
    if not (deploy.BIN / "ansible-playbook").exists():
        missing("the vLLM role test needs ansible-playbook (the test extra: make .venv/.test)")
    if os.geteuid() != 0:
        missing("the vLLM role test writes root-owned files: it needs root")
    key_file, units = tmp_path / "vllm" / "api-key.env", tmp_path / "units"
    units.mkdir()
    key = "e2e-" + "0123456789abcdef" * 3

    def play(*extra: str) -> subprocess.CompletedProcess[str]:
        playbook = tmp_path / "vllm.yml"
        playbook.write_text(
            "- hosts: localhost\n"
            "  connection: local\n"
            "  gather_facts: false\n"
            "  vars:\n"
            "    ansible_python_interpreter: /usr/bin/python3\n"
            "    vllm_models: [{name: m, port: 18299}]\n"
            "    vllm_require_gpu: false\n"
            "    vllm_install: false\n"
            "    vllm_start_services: false\n"
            f"    vllm_systemd_dir: {units}\n"
            f"    vllm_api_key_file: {key_file}\n"
            "  roles: [vllm]\n",
            encoding="utf-8",
        )
        env = deploy.ansible_env() | {"ANSIBLE_ROLES_PATH": str(deploy.ANSIBLE / "roles")}
        return subprocess.run(
            [str(deploy.BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), *extra],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    refused = play()
    assert refused.returncode != 0 and "vllm_api_key is not set" in refused.stdout
    assert not key_file.exists() and not any(units.iterdir())
    for run in (1, 2):
        done = play("-e", f"vllm_api_key={key}")
        assert done.returncode == 0, done.stdout[-3000:]
        assert key not in done.stdout + done.stderr
        if run == 2:
            assert "changed=0" in done.stdout, done.stdout[-3000:]
    assert key_file.read_text(encoding="ascii") == f"VLLM_API_KEY={key}\n"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.owner() == "root"
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    unit = deploy.Unit.read(units / "vllm-m.service")
    assert unit.directives["EnvironmentFile"] == [str(key_file)]
    assert key not in (units / "vllm-m.service").read_text(encoding="utf-8")


def test_the_vllm_role_renders_each_models_vllm_options_and_refuses_what_vllm_would(
    tmp_path: Path,
) -> None:
    """The vllm role alone, nothing installed or started, through real Ansible (its
    filter plugin and the appliance's table): a bad option stops the play before anything
    is written, naming the entry and the field; good ones are rendered into each unit's
    command line, and a second run changes nothing."""
    if not (deploy.BIN / "ansible-playbook").exists():
        missing("the vLLM role test needs ansible-playbook (the test extra: make .venv/.test)")
    if os.geteuid() != 0:
        missing("the vLLM role test writes root-owned files: it needs root")
    key_file, units = tmp_path / "vllm" / "api-key.env", tmp_path / "units"
    units.mkdir()
    good = [
        {"name": "deepseek-r1-distill-qwen-32b", "port": 18301, "max_model_len": 32768},
        {
            "name": "qwen",
            "port": 18302,
            "tool_call_parser": "hermes",
            "enable_auto_tool_choice": True,
            "chat_template": "/etc/vllm/templates/qwen.jinja",
            "guided_decoding_backend": "xgrammar",
        },
        {"name": "plain", "port": 18303},
    ]

    def play(models: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
        playbook = tmp_path / "vllm.yml"
        playbook.write_text(
            "- hosts: localhost\n"
            "  connection: local\n"
            "  gather_facts: false\n"
            "  vars:\n"
            "    ansible_python_interpreter: /usr/bin/python3\n"
            f"    vllm_models: {json.dumps(models)}\n"
            "    vllm_require_gpu: false\n"
            "    vllm_install: false\n"
            "    vllm_start_services: false\n"
            f"    vllm_systemd_dir: {units}\n"
            f"    vllm_api_key_file: {key_file}\n"
            f"    vllm_api_key: e2e-{'0123456789abcdef' * 3}\n"
            "  roles: [vllm]\n",
            encoding="utf-8",
        )
        env = deploy.ansible_env() | {"ANSIBLE_ROLES_PATH": str(deploy.ANSIBLE / "roles")}
        return subprocess.run(
            [str(deploy.BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    refused = play([*good, {"name": "bad", "port": 18304, "tool_call_parser": "deepseek_v3"}])
    assert refused.returncode != 0
    assert "vllm_models entry 'bad': tool_call_parser 'deepseek_v3' needs vLLM 0.9.0" in (
        refused.stdout
    )
    assert not key_file.exists() and not any(units.iterdir())
    for run in (1, 2):
        done = play(good)
        assert done.returncode == 0, done.stdout[-3000:]
        if run == 2:
            assert "changed=0" in done.stdout, done.stdout[-3000:]
    starts = {
        model["name"]: deploy.Unit.read(units / f"vllm-{model['name']}.service").one("ExecStart")
        for model in good
    }
    assert starts["deepseek-r1-distill-qwen-32b"].endswith(
        "--max-model-len 32768 --enable-reasoning --reasoning-parser deepseek_r1"
        " --disable-log-requests"
    )
    assert starts["qwen"].endswith(
        "--tool-call-parser hermes --enable-auto-tool-choice --chat-template"
        " /etc/vllm/templates/qwen.jinja --guided-decoding-backend xgrammar"
        " --disable-log-requests"
    )
    assert starts["plain"].endswith("--port 18303 --disable-log-requests")
