"""The deployment files (compose/, ansible/) parse and agree with the code.

Fast and needs neither Docker nor Ansible: YAML is read with PyYAML, the role's
templates are rendered with Jinja2 from the role's defaults, and settings names are
checked against ``appliance.config.Settings`` itself.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from appliance.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
ANSIBLE = ROOT / "ansible"
ROLE = ANSIBLE / "roles" / "appliance"
COMPOSE_FILES = [COMPOSE / "compose.yaml", COMPOSE / "compose.cpu-demo.yaml"]
YAML_FILES = sorted(
    p for d in (COMPOSE, ANSIBLE) for p in d.rglob("*") if p.suffix in {".yml", ".yaml"}
)
SETTINGS = set(Settings.model_fields)
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN")

# Task keywords that are not the module; whatever key is left over names the module.
TASK_KEYWORDS = {
    "name", "when", "notify", "become", "become_user", "become_method", "register", "loop",
    "loop_control", "with_items", "with_dict", "no_log", "tags", "changed_when", "failed_when",
    "environment", "vars", "run_once", "delegate_to", "ignore_errors", "until", "retries",
    "delay", "check_mode", "diff", "listen", "args", "throttle", "timeout", "any_errors_fatal",
    "block", "rescue", "always",
}  # fmt: skip
# Module arguments that mean a task handles a secret and so must carry no_log: true.
SECRET_MARKERS = (
    "appliance.yaml.j2",
    "appliance_secret_key",
    "appliance_database_url",
    "appliance_broker_url",
    "appliance_result_backend",
    "__appliance_init.stdout",
    "bin/appliance init",
    "appliance_engine_key",
)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _services(path: Path) -> dict[str, dict[str, Any]]:
    return _load(path)["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _tasks(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every task, blocks flattened."""
    found: list[dict[str, Any]] = []
    for task in items or []:
        found.append(task)
        for section in ("block", "rescue", "always"):
            found.extend(_tasks(task.get(section)))
    return found


def _role_tasks() -> list[tuple[Path, dict[str, Any]]]:
    files = [*sorted((ROLE / "tasks").glob("*.yml")), ROLE / "handlers" / "main.yml"]
    return [(path, task) for path in files for task in _tasks(_load(path))]


def _module(task: dict[str, Any]) -> str | None:
    modules = [key for key in task if key not in TASK_KEYWORDS]
    assert len(modules) <= 1, f"task {task.get('name')!r} names several modules: {modules}"
    return modules[0] if modules else None


# --- every YAML file ---------------------------------------------------------------


def test_the_deployment_files_exist() -> None:
    names = {_rel(p) for p in YAML_FILES}
    assert {
        "compose/compose.yaml",
        "compose/compose.cpu-demo.yaml",
        "ansible/site.yml",
        "ansible/inventories/single/hosts.yml",
        "ansible/inventories/single/group_vars/all.yml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_is_valid(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and documents[0] is not None, f"{_rel(path)} is empty"


# --- compose -----------------------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_rel)
def test_every_service_has_an_image_or_a_build(path: Path) -> None:
    for name, service in _services(path).items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"


def test_api_and_portal_have_healthchecks_on_healthz() -> None:
    services = _services(COMPOSE / "compose.yaml")
    for name, port in (("api", 8000), ("portal", 8001)):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in test, name
    demo = _services(COMPOSE / "compose.cpu-demo.yaml")["appliance"]
    assert "/healthz" in " ".join(demo["healthcheck"]["test"])


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_rel)
def test_no_secret_is_written_in_a_compose_file(path: Path) -> None:
    for name, service in _services(path).items():
        for var, value in _environment(service).items():
            if any(word in var.upper() for word in SECRET_WORDS):
                assert var.endswith("_FILE"), f"{name}: {var} holds a literal secret"
                assert value.startswith("/run/secrets/"), f"{name}: {var} is not a secret file"
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{name}: {var} has a password"
    for secret in (_load(path).get("secrets") or {}).values():
        assert set(secret) == {"file"}, "secrets come from files"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=_rel)
def test_appliance_variables_are_real_settings(path: Path) -> None:
    """The appliance refuses unknown APPLIANCE_* variables, so a typo stops start-up."""
    text = path.read_text(encoding="utf-8")
    for var in re.findall(r"\$\{(APPLIANCE_\w+?)(?::?-[^}]*)?\}", text):
        assert var.removeprefix("APPLIANCE_").lower() in SETTINGS, f"${{{var}}}"
    for name, service in _services(path).items():
        for var in _environment(service):
            if var.startswith("APPLIANCE_"):
                setting = var.removeprefix("APPLIANCE_").removesuffix("_FILE").lower()
                assert setting in SETTINGS, f"{name}: {var} is not a setting"


def test_production_stack_waits_for_init_and_healthy_services() -> None:
    services = _services(COMPOSE / "compose.yaml")
    assert services["init"]["restart"] == "no"
    for name in ("api", "portal", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    assert "--served-model-name" in services["vllm"]["command"]


def test_entry_points_named_in_the_commands_exist() -> None:
    for module in ("appliance.wsgi", "appliance.worker", "appliance.cli"):
        assert importlib.util.find_spec(module) is not None, module
    text = (COMPOSE / "compose.yaml").read_text(encoding="utf-8")
    for target in ("appliance.wsgi:api", "appliance.wsgi:portal", "-A, appliance.worker"):
        assert target in text


# --- the ansible role --------------------------------------------------------------


def test_role_has_the_standard_shape() -> None:
    for part in ("defaults", "tasks", "handlers", "meta", "vars"):
        assert (ROLE / part / "main.yml").is_file(), part
    assert sorted(p.name for p in (ROLE / "templates").glob("*.j2"))


def test_inventory_has_the_appliance_groups() -> None:
    groups = _load(ANSIBLE / "inventories" / "single" / "hosts.yml")["all"]["children"]
    assert {"appliance_gateway", "appliance_workers", "gpu_nodes", "databases"} <= set(groups)


def test_every_task_uses_a_fully_qualified_module_name() -> None:
    for path, task in _role_tasks():
        module = _module(task)
        if module is not None:
            assert "." in module, f"{_rel(path)}: {task.get('name')!r} uses {module}"


def test_file_modes_are_quoted_strings() -> None:
    for path, task in _role_tasks():
        args = task.get(_module(task) or "", None)
        if isinstance(args, dict):
            for key in ("mode", "directory_mode"):
                if key in args:
                    assert isinstance(args[key], str), f"{_rel(path)}: {task['name']!r} {key}"


def test_tasks_touching_secrets_hide_their_output() -> None:
    for path, task in _role_tasks():
        args = json.dumps(task.get(_module(task) or ""))
        if any(marker in args for marker in SECRET_MARKERS):
            assert task.get("no_log") is True, f"{_rel(path)}: {task['name']!r} needs no_log"


def test_role_variables_are_defined() -> None:
    defaults = set(_load(ROLE / "defaults" / "main.yml"))
    internals = set(_load(ROLE / "vars" / "main.yml"))
    internals |= {task["register"] for _, task in _role_tasks() if "register" in task}
    files = [p for d in ("tasks", "handlers", "templates", "vars") for p in (ROLE / d).iterdir()]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for var in set(re.findall(r"(?<![\w.])appliance_\w+", text)):
            assert var in defaults, f"{_rel(path)} uses {var}, not in defaults/main.yml"
        for var in set(re.findall(r"(?<![\w.])__appliance_\w+", text)):
            assert var in internals, f"{_rel(path)} uses {var}, not in vars/main.yml"


def test_every_default_is_commented() -> None:
    lines = (ROLE / "defaults" / "main.yml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"appliance_\w+:", line):
            block = lines[max(0, i - 8) : i]
            assert any(prior.startswith("#") for prior in block), f"{line} is not documented"


# --- the settings file the role writes ----------------------------------------------


def _settings_template_keys() -> list[str]:
    text = (ROLE / "templates" / "appliance.yaml.j2").read_text(encoding="utf-8")
    return re.findall(r"^(\w+):", text, flags=re.MULTILINE)


def test_settings_template_writes_only_real_settings() -> None:
    keys = _settings_template_keys()
    assert keys, "no settings in appliance.yaml.j2"
    assert len(keys) == len(set(keys)), "a setting is written twice"
    assert set(keys) <= SETTINGS, f"not settings: {sorted(set(keys) - SETTINGS)}"
    defaults = _load(ROLE / "defaults" / "main.yml")
    assert all(f"appliance_{key}" in defaults for key in keys)


def _render_context() -> dict[str, Any]:
    """The role's defaults and vars, their Jinja resolved the way Ansible would."""
    env = _jinja()
    context: dict[str, Any] = {"playbook_dir": str(ANSIBLE), "item": "api"}
    context |= _load(ROLE / "defaults" / "main.yml") | _load(ROLE / "vars" / "main.yml")

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and "{" in value:
            return env.from_string(value).render(context)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    for _ in range(5):  # variables refer to variables
        context = {name: resolve(value) for name, value in context.items()}
    return context


def _jinja() -> jinja2.Environment:
    # Renders YAML and unit files, not HTML: nothing to escape.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701
    env.filters["to_json"] = json.dumps
    env.filters["quote"] = shlex.quote
    env.filters["bool"] = lambda value: str(value).lower() in {"true", "yes", "1", "on"}
    return env


def test_settings_template_renders_valid_settings_from_the_defaults() -> None:
    template = (ROLE / "templates" / "appliance.yaml.j2").read_text(encoding="utf-8")
    rendered = yaml.safe_load(_jinja().from_string(template).render(_render_context()))
    settings = Settings(**rendered)
    assert str(settings.home) == "/var/lib/appliance"
    assert settings.database_url is None  # the embedded default until PostgreSQL is set


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("api", "gunicorn -c python:appliance.api.gunicorn_conf"),
        ("api", "appliance.wsgi:api"),
        ("portal", "--bind 127.0.0.1:8001 appliance.wsgi:portal"),
        ("worker", "celery -A appliance.worker worker -Q celery"),
        ("beat", "celery -A appliance.worker beat"),
    ],
)
def test_systemd_units_run_the_processes_of_serve(unit: str, expected: str) -> None:
    template = (ROLE / "templates" / "appliance.service.j2").read_text(encoding="utf-8")
    context = _render_context() | {"item": unit}
    rendered = _jinja().from_string(template).render(context)
    exec_start = next(line for line in rendered.splitlines() if line.startswith("ExecStart="))
    assert expected in exec_start
    assert "User=appliance" in rendered


# --- the vllm role and service: sealed models unsealed to tmpfs, wiped after ---------

VLLM_ROLE = ANSIBLE / "roles" / "vllm"
VLLM_ENTRYPOINT = COMPOSE / "vllm-entrypoint.sh"


def _vllm_role_tasks() -> list[tuple[Path, dict[str, Any]]]:
    files = [*sorted((VLLM_ROLE / "tasks").glob("*.yml")), VLLM_ROLE / "handlers" / "main.yml"]
    return [(path, task) for path in files for task in _tasks(_load(path))]


def _vllm_role_filters() -> dict[str, Any]:
    """The role's own filters (filter_plugins/), as Ansible loads them."""
    path = VLLM_ROLE / "filter_plugins" / "appliance_vllm.py"
    if not path.exists():  # a role without (the tests then say what its units lack)
        return {}
    spec = importlib.util.spec_from_file_location("vllm_role_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def _vllm_unit(model: dict[str, Any] | None = None, **overrides: Any) -> str:
    """The unit as Ansible renders it (trim_blocks), for the first model of the defaults."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)  # noqa: S701
    env.filters.update(_vllm_role_filters())
    context: dict[str, Any] = _load(VLLM_ROLE / "defaults" / "main.yml") | overrides
    context["item"] = model or context["vllm_models"][0]
    for name, value in _load(VLLM_ROLE / "vars" / "main.yml").items():
        context[name] = (
            env.from_string(value).render(context)
            if isinstance(value, str)
            else {k: env.from_string(str(v)).render(context) for k, v in value.items()}
        )
    template = (VLLM_ROLE / "templates" / "vllm.service.j2").read_text(encoding="utf-8")
    return env.from_string(template).render(context)


def _directives(unit: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{name}=")]


def test_vllm_role_has_the_standard_shape_and_is_in_the_playbook() -> None:
    for part in ("defaults", "tasks", "handlers", "meta", "vars"):
        assert (VLLM_ROLE / part / "main.yml").is_file(), part
    assert (VLLM_ROLE / "templates" / "vllm.service.j2").is_file()
    plays = _load(ANSIBLE / "site.yml")
    (play,) = [p for p in plays if {"role": "vllm"} in p["roles"]]
    assert play["hosts"] == "gpu_nodes" and play["become"] is True


def test_vllm_role_tasks_follow_the_house_rules() -> None:
    for path, task in _vllm_role_tasks():
        module = _module(task)
        if module is None:
            continue
        assert "." in module, f"{_rel(path)}: {task.get('name')!r} uses {module}"
        args = task.get(module)
        if isinstance(args, dict):
            for key in ("mode", "directory_mode"):
                if key in args:
                    assert isinstance(args[key], str), f"{_rel(path)}: {task['name']!r} {key}"
        text = json.dumps(args)
        assert "restarted" not in text or path.name == "main.yml", "restarts only in handlers"


def test_vllm_role_variables_are_defined_and_documented() -> None:
    defaults = set(_load(VLLM_ROLE / "defaults" / "main.yml"))
    internals = set(_load(VLLM_ROLE / "vars" / "main.yml"))
    internals |= {task["register"] for _, task in _vllm_role_tasks() if "register" in task}
    files = [
        p for d in ("tasks", "handlers", "templates", "vars") for p in (VLLM_ROLE / d).iterdir()
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for var in set(re.findall(r"(?<![\w.])vllm_\w+", text)):
            assert var in defaults, f"{_rel(path)} uses {var}, not in defaults/main.yml"
        for var in set(re.findall(r"(?<![\w.])__vllm_\w+", text)):
            assert var in internals, f"{_rel(path)} uses {var}, not in vars/main.yml"
    lines = (VLLM_ROLE / "defaults" / "main.yml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"vllm_\w+:", line):
            assert any(p.startswith("#") for p in lines[max(0, i - 8) : i]), f"{line} undocumented"


def test_vllm_unit_unseals_to_tmpfs_before_start_and_wipes_after_stop() -> None:
    unit = _vllm_unit()
    appliance = "/opt/appliance/venv/bin/appliance"
    model_dir = "/dev/shm/appliance-vllm/deepseek"
    assert _directives(unit, "ExecStartPre") == [
        f"{appliance} vault wipe {model_dir}",
        f"{appliance} vault unseal deepseek --to {model_dir}",
    ]
    (start,) = _directives(unit, "ExecStart")
    assert start.startswith(f"/opt/vllm/venv/bin/vllm serve {model_dir} ")
    assert "--served-model-name deepseek" in start and "--port 8200" in start
    assert _directives(unit, "ExecStopPost") == [f"{appliance} vault wipe {model_dir}"]
    assert "APPLIANCE_HOME=/var/lib/appliance" in _directives(unit, "Environment")
    assert _directives(unit, "User") == ["appliance"] and _directives(unit, "UMask") == ["0077"]
    assert model_dir.startswith("/dev/shm/")
    extra = _vllm_unit({"name": "qwen", "port": 8300, "args": ["--tensor-parallel-size", "2"]})
    (start,) = _directives(extra, "ExecStart")
    assert start.endswith("--disable-log-requests --tensor-parallel-size 2")
    assert "--to /dev/shm/appliance-vllm/qwen" in _directives(extra, "ExecStartPre")[1]


# --- each model's vLLM options: tool calls, reasoning, structured output -----------------

VLLM_OPTION_FLAGS = (
    "--tool-call-parser",
    "--enable-auto-tool-choice",
    "--enable-reasoning",
    "--reasoning-parser",
    "--chat-template",
    "--max-model-len",
    "--guided-decoding-backend",
)


def _start(model: dict[str, Any], **overrides: Any) -> str:
    (start,) = _directives(_vllm_unit({"port": 8300, **model}, **overrides), "ExecStart")
    return start


def _options_part(start: str) -> str:
    """What the unit passes between the LoRA flags and --disable-log-requests."""
    return start.split(" --port 8300", 1)[1].split(" --disable-log-requests", 1)[0]


def test_a_deepseek_r1_distill_gets_deepseeks_reasoning_parser() -> None:
    start = _start({"name": "deepseek-r1-distill-qwen-32b", "args": ["--seed", "1"]})
    # vLLM 0.8.5 needs --enable-reasoning for --reasoning-parser to take effect.
    assert _options_part(start) == " --enable-reasoning --reasoning-parser deepseek_r1"
    assert start.endswith("--disable-log-requests --seed 1")  # args stay last
    # From vLLM 0.9 the parser alone turns reasoning on (--enable-reasoning is deprecated).
    newer = _start(
        {"name": "DeepSeek-R1-Distill-Llama-8B"}, vllm_version="0.9.2", vllm_package="vllm==0.9.2"
    )
    assert _options_part(newer) == " --reasoning-parser deepseek_r1"


def test_a_deepseek_v3_gets_deepseeks_tool_parser_where_vllm_has_it() -> None:
    start = _start(
        {"name": "deepseek-v3-0324", "tensor_parallel_size": 8},
        vllm_version="0.9.2",
        vllm_package="vllm==0.9.2",
    )
    tools = " --tool-call-parser deepseek_v3 --enable-auto-tool-choice"
    assert _options_part(start) == " --tensor-parallel-size 8" + tools
    assert "--reasoning-parser" not in start  # V3 is no reasoning model
    # vLLM 0.8.5 (the version deployed) has no deepseek_v3 parser: it would refuse to start.
    plain = _start({"name": "deepseek-v3-0324"})
    assert not any(flag in plain for flag in VLLM_OPTION_FLAGS)
    with pytest.raises(Exception, match=r"tool_call_parser 'deepseek_v3' needs vLLM 0\.9\.0"):
        _start({"name": "deepseek-v3-0324", "tool_call_parser": "deepseek_v3"})
    # DeepSeek-V3.1's tool calls are another format: not the V3 family.
    assert "--tool-call-parser" not in _start(
        {"name": "deepseek-v3.1"}, vllm_version="0.9.2", vllm_package="vllm==0.9.2"
    )


def test_explicit_chat_template_context_length_and_guided_backend() -> None:
    start = _start(
        {
            "name": "qwen2.5-72b",
            "tool_call_parser": "hermes",
            "enable_auto_tool_choice": True,
            "chat_template": "/etc/vllm/templates/qwen.jinja",
            "max_model_len": 32768,
            "guided_decoding_backend": "xgrammar",
        }
    )
    assert _options_part(start) == (
        " --max-model-len 32768 --tool-call-parser hermes --enable-auto-tool-choice"
        " --chat-template /etc/vllm/templates/qwen.jinja --guided-decoding-backend xgrammar"
    )
    # An explicit null switches a family default off.
    assert _options_part(_start({"name": "deepseek-r1-32b", "reasoning_parser": None})) == ""


def test_a_plain_model_gets_none_of_the_flags() -> None:
    from appliance.upstream import vllm_options

    entry = {"name": "llama-3.1-8b", "args": ["--seed", "1"]}
    start = _start(entry)
    assert not any(flag in start for flag in VLLM_OPTION_FLAGS)
    assert start.endswith(" --port 8300 --disable-log-requests --seed 1")
    # Plain because the appliance's table says so, for every version it knows.
    for version in ("0.8.5", "0.9.2"):
        assert vllm_options.entry_args(entry, version) == []
        assert not any(f in _start(entry, vllm_version=version) for f in VLLM_OPTION_FLAGS)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"tool_call_parser": "hermes2"}, "tool_call_parser 'hermes2' is not one of vLLM 0.8.5's"),
        ({"enable_auto_tool_choice": True}, "enable_auto_tool_choice needs a tool_call_parser"),
        ({"reasoning_parser": "qwen3"}, "reasoning_parser 'qwen3' needs vLLM 0.9.0"),
        ({"chat_template": "templates/x.jinja"}, "chat_template must be the absolute path"),
        ({"chat_template": "/etc/x.jinja --api-key k"}, "chat_template must be the absolute"),
        ({"max_model_len": "lots"}, "max_model_len must be a whole number"),
        ({"guided_decoding_backend": "xgrammar:no-fallback"}, "guided_decoding_backend"),
    ],
)
def test_the_unit_refuses_what_vllm_would_naming_the_field(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=re.escape(f"vllm_models entry 'm': {message}")):
        _start({"name": "m", **entry})


def test_the_role_checks_the_options_first_for_the_version_it_installs() -> None:
    from appliance.upstream import vllm_options

    main = _load(VLLM_ROLE / "tasks" / "main.yml")
    assert main[0]["ansible.builtin.import_tasks"] == "options.yml"  # before any install
    tasks = {task["name"]: task for task in _load(VLLM_ROLE / "tasks" / "options.yml")}
    check = tasks["Check each model's vLLM options against the appliance's table"]
    assert "appliance_vllm_args(vllm_version)" in check["ansible.builtin.assert"]["that"][0]
    assert check["loop"] == "{{ vllm_models }}"
    # One version everywhere: the table's, the role's, compose's image, the appliance role's.
    defaults = _load(VLLM_ROLE / "defaults" / "main.yml")
    assert defaults["vllm_version"] == vllm_options.VLLM_VERSION
    assert defaults["vllm_package"] == f"vllm=={vllm_options.VLLM_VERSION}"
    assert _load(ROLE / "defaults" / "main.yml")["appliance_vllm_version"] == (
        vllm_options.VLLM_VERSION
    )
    image = _services(COMPOSE / "compose.yaml")["vllm"]["build"]["args"]["VLLM_IMAGE"]
    assert image.endswith(f"vllm/vllm-openai:v{vllm_options.VLLM_VERSION}}}")
    dockerfile = (COMPOSE / "Dockerfile.vllm").read_text(encoding="utf-8")
    assert f"ARG VLLM_IMAGE=vllm/vllm-openai:v{vllm_options.VLLM_VERSION}" in dockerfile
    for inventory in ("single", "fleet"):
        values = _load(ANSIBLE / "inventories" / inventory / "group_vars" / "all.yml")
        assert values["vllm_version"] == vllm_options.VLLM_VERSION
        assert values["appliance_vllm_version"] == "{{ vllm_version }}"


def test_the_fleets_deepseek_r1_distill_is_served_with_its_reasoning_parser() -> None:
    fleet = _load(ANSIBLE / "inventories" / "fleet" / "group_vars" / "all.yml")
    (entry,) = [m for m in fleet["appliance_models"] if m["engine"] == "vllm"]
    start = _start({**entry, "port": 8300})
    assert "--max-model-len 32768 --enable-reasoning --reasoning-parser deepseek_r1" in start


def test_the_appliance_role_keeps_the_registrys_vllm_options_as_the_entries_give_them() -> None:
    tasks = {t.get("name"): t for _, t in _role_tasks()}
    add = tasks["Register the models with the gateway"]["ansible.builtin.command"]["cmd"]
    assert "__appliance_vllm_flags if item.engine == 'vllm'" in add
    sync = tasks["Keep the registered vLLM models' options as the entries give them"]
    assert (
        "model set {{ item.name }} --defaults {{ __appliance_vllm_flags }}"
        in (sync["ansible.builtin.command"]["cmd"])
    )
    assert "'unchanged' not in" in sync["changed_when"]  # a second run changes nothing
    internals = _load(ROLE / "vars" / "main.yml")
    from appliance.upstream import vllm_options

    assert set(internals["__appliance_vllm_option_keys"]) == set(vllm_options.FIELDS)


def test_the_compose_vllm_service_takes_its_options_from_the_registry() -> None:
    vllm = _services(COMPOSE / "compose.yaml")["vllm"]
    env = _environment(vllm)
    assert env["REGISTRY_MODEL"] == env["VAULT_MODEL"] == "${DEPLOY_MODEL:-deepseek}"
    script = VLLM_ENTRYPOINT.read_text(encoding="utf-8")
    assert 'appliance model vllm-args "$REGISTRY_MODEL" --vllm-version "$VLLM_VERSION"' in script
    command = " ".join(vllm["command"])
    assert not any(flag in command for flag in VLLM_OPTION_FLAGS)  # only the registry's


def test_the_vault_commands_the_deployments_run_exist() -> None:
    """The unit and the entrypoint call `appliance vault unseal NAME --to DIR` and `wipe`."""
    from appliance.cli import main

    vault = main.commands["vault"]
    assert {"unseal", "wipe"} <= set(vault.commands)  # type: ignore[attr-defined]
    unseal = vault.commands["unseal"]  # type: ignore[attr-defined]
    assert "--to" in {opt for p in unseal.params for opt in p.opts}
    script = VLLM_ENTRYPOINT.read_text(encoding="utf-8")
    assert 'appliance vault unseal "$VAULT_MODEL" --to "$UNSEAL_DIR"' in script
    assert 'appliance vault wipe "$UNSEAL_DIR"' in script and "trap wipe EXIT" in script


def test_compose_vllm_unseals_into_a_private_tmpfs() -> None:
    vllm = _services(COMPOSE / "compose.yaml")["vllm"]
    assert vllm["entrypoint"] == ["appliance-entrypoint", "vllm-entrypoint"]
    assert vllm["build"]["dockerfile"] == "compose/Dockerfile.vllm"
    dockerfile = (COMPOSE / "Dockerfile.vllm").read_text(encoding="utf-8")
    assert "compose/vllm-entrypoint.sh /usr/local/bin/vllm-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["appliance-entrypoint", "vllm-entrypoint"]' in dockerfile
    ignore = (COMPOSE / "Dockerfile.vllm.dockerignore").read_text(encoding="utf-8")
    assert "!compose/vllm-entrypoint.sh" in ignore and "!compose/docker-entrypoint.sh" in ignore
    env = _environment(vllm)
    unseal_dir = env["UNSEAL_DIR"]
    (tmpfs,) = vllm["tmpfs"]
    mount, _, options = tmpfs.partition(":")
    assert unseal_dir.startswith(mount + "/") and "mode=0700" in options
    assert "appliance-home:/var/lib/appliance" in vllm["volumes"]  # the vault and its keys
    assert env["APPLIANCE_HOME"] == "/var/lib/appliance"
    assert "models-unsealed" not in (_load(COMPOSE / "compose.yaml").get("volumes") or {})


def test_vllm_entrypoint_is_a_valid_executable_script() -> None:
    import os
    import subprocess

    assert os.access(VLLM_ENTRYPOINT, os.X_OK)
    subprocess.run(["sh", "-n", str(VLLM_ENTRYPOINT)], check=True)


# --- the engine key: required by every model server, never on a command line ---------


def test_the_vllm_unit_takes_the_engine_key_from_a_root_only_file() -> None:
    unit = _vllm_unit()
    assert _directives(unit, "EnvironmentFile") == ["/etc/vllm/api-key.env"]
    (start,) = _directives(unit, "ExecStart")
    assert "--api-key" not in start  # argv is world-readable in /proc
    assert not any("VLLM_API_KEY" in env for env in _directives(unit, "Environment"))
    tasks = {task["name"]: task for _, task in _vllm_role_tasks()}
    write = tasks["Write vLLM's key where systemd reads it"]
    copy = write["ansible.builtin.copy"]
    assert copy["content"] == "VLLM_API_KEY={{ vllm_api_key }}\n"
    assert copy["dest"] == "{{ vllm_api_key_file }}"
    assert (copy["owner"], copy["group"], copy["mode"]) == ("root", "root", "0600")
    assert write["no_log"] is True and write["notify"] == "Restart vllm services"
    check = tasks["Check that vLLM has its key (the deployment's engine key)"]
    assert "vllm_api_key" in check["ansible.builtin.assert"]["that"][0]


def test_the_appliance_role_installs_the_engine_key_from_stdin() -> None:
    (task,) = [
        t for _, t in _role_tasks() if t.get("name") == "Install the deployment's engine key"
    ]
    command = task["ansible.builtin.command"]
    assert command["argv"][1:4] == ["engine", "rotate-key", "--key-stdin"]
    assert command["stdin"] == "{{ appliance_engine_key }}"  # not in argv
    assert not any("appliance_engine_key }}" in arg for arg in command["argv"])
    assert task["no_log"] is True and task["become_user"] == "{{ appliance_user }}"
    assert task["when"] == "appliance_engine_key is not none"
    assert "nothing changed" in task["changed_when"]  # a second run changes nothing
    engine_unit = (ROLE / "templates" / "appliance-engine.service.j2").read_text(encoding="utf-8")
    assert "api-key" not in engine_unit  # the engine reads HOME/keys/engine.key itself


@pytest.mark.parametrize("inventory", ["single", "fleet"])
def test_the_inventories_give_the_gateway_and_vllm_the_same_engine_key(inventory: str) -> None:
    values = _load(ANSIBLE / "inventories" / inventory / "group_vars" / "all.yml")
    assert values["appliance_engine_key"] == "{{ vault_appliance_engine_key }}"
    assert values["vllm_api_key"] == values["appliance_engine_key"]


def test_compose_gives_every_model_server_and_its_clients_the_engine_key() -> None:
    stack = _load(COMPOSE / "compose.yaml")
    services = stack["services"]
    assert stack["secrets"]["engine_key"] == {"file": "./secrets/engine_key"}
    vllm = _environment(services["vllm"])
    assert vllm["VLLM_API_KEY_FILE"] == "/run/secrets/engine_key"
    for name in ("api", "worker", "trainer", "trainer-cpu", "engine", "vllm", "init"):
        env = _environment(services[name])
        assert env["APPLIANCE_ENGINE_KEY_FILE"] == "/run/secrets/engine_key", name
        assert "engine_key" in services[name]["secrets"], name
    assert "engine_key" in Settings.model_fields  # what APPLIANCE_ENGINE_KEY_FILE becomes
    command = " ".join(services["vllm"]["command"] + services["engine"]["command"])
    assert "--api-key" not in command
    health = " ".join(services["engine"]["healthcheck"]["test"])
    assert "127.0.0.1:8100/health" in health  # the only route open without the key
    entrypoint = (COMPOSE / "docker-entrypoint.sh").read_text(encoding="utf-8")
    assert "\\|VLLM_API_KEY\\)_FILE=" in entrypoint


def test_the_compose_entrypoint_turns_the_key_file_into_vllms_variable(tmp_path: Path) -> None:
    import os
    import subprocess

    secret = tmp_path / "engine_key"
    secret.write_text("k" * 40 + "\n", encoding="ascii")
    env = {"PATH": os.environ["PATH"], "VLLM_API_KEY_FILE": str(secret)}
    done = subprocess.run(
        ["sh", str(COMPOSE / "docker-entrypoint.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert f"VLLM_API_KEY={'k' * 40}" in lines
    assert not any(line.startswith("VLLM_API_KEY_FILE=") for line in lines)
