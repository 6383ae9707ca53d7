"""The `appliance` command contract, run as a user would run it (a subprocess per call)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.auth.users import check_login
from appliance.db import Database
from appliance.models import ApiKey, AuditEvent, Model
from tests import timing
from tests.conftest import make_settings


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full_env.update({"APPLIANCE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timing.scaled(120),
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def initialised_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template") / "home"
    result = run(home, "init")
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture()
def home(initialised_home: Path, tmp_path: Path) -> Path:
    """A copy of an initialised home (initialising each time would dominate the run)."""
    home = tmp_path / "home"
    shutil.copytree(initialised_home, home)
    return home


def database(home: Path) -> Database:
    return Database(make_settings(home))


def test_init_creates_a_private_home_and_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    first = run(home, "init", "--admin", "boss")
    password = last_line(first)
    key_file = home / "keys" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "appliance.db").stat().st_mode) == 0o600
    key_before = key_file.read_bytes()
    with database(home).session() as session:
        assert check_login(session, "boss", password) is not None
    second = run(home, "init")
    assert second.returncode == 0
    assert "already initialised; nothing changed" in second.stdout
    assert password not in second.stdout
    assert key_file.read_bytes() == key_before


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
def test_homes_are_independent(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run(a, "init")
    run(b, "init")
    last_line(run(a, "user", "create", "only-in-a", "--role", "developer"))
    refused = run(b, "key", "create", "--user", "only-in-a", "--name", "x")
    assert refused.returncode == 1
    assert "no user named 'only-in-a'" in refused.stderr
    assert (a / "keys" / "master.key").read_bytes() != (b / "keys" / "master.key").read_bytes()


def test_user_create_prints_the_password_last(home: Path) -> None:
    password = last_line(run(home, "user", "create", "carol", "--role", "developer"))
    with database(home).session() as session:
        user = check_login(session, "carol", password)
        assert user is not None and user.role_names == ["developer"]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "admin.user.create"))
        assert [e.target for e in events] == ["carol"]
    duplicate = run(home, "user", "create", "carol", "--role", "developer")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    unknown_role = run(home, "user", "create", "dave", "--role", "wizard")
    assert unknown_role.returncode == 1 and "unknown role 'wizard'" in unknown_role.stderr


def test_admin_created_on_the_cli_enrols_totp_at_first_sign_in(home: Path) -> None:
    result = run(home, "user", "create", "root2", "--role", "admin")
    lines = result.stdout.strip().splitlines()
    password = last_line(result)
    assert password == lines[-1] and " " not in password and len(password) >= 20
    assert any("TOTP" in line for line in lines[:-1])
    with database(home).session() as session:
        user = check_login(session, "root2", password)
        assert user is not None and user.totp_secret is None
        user.totp_secret, user.failed_logins = "sealed-elsewhere", 7
    assert "root2 is unlocked" in last_line(run(home, "user", "unlock", "root2"))
    assert "is reset" in last_line(run(home, "user", "reset-totp", "root2"))
    with database(home).session() as session:
        user = check_login(session, "root2", password)
        assert user is not None and (user.totp_secret, user.failed_logins) == (None, 0)
        actions = set(
            session.scalars(select(AuditEvent.action).where(AuditEvent.target == "root2"))
        )
        assert {"admin.user.create", "admin.user.unlock", "admin.user.totp.reset"} <= actions


def test_key_create_prints_the_key_alone_and_stores_only_its_hash(home: Path) -> None:
    last_line(run(home, "user", "create", "erin", "--role", "app"))
    key = last_line(
        run(
            home,
            "key",
            "create",
            "--user",
            "erin",
            "--name",
            "ci",
            "--models",
            "tiny*",
            "--expires-days",
            "7",
        )
    )
    assert key.startswith("sk-app-") and " " not in key
    assert key.encode() not in (home / "appliance.db").read_bytes()
    with database(home).session() as session:
        row = session.scalar(select(ApiKey))
        assert (row.name, row.models, row.user.username) == ("ci", "tiny*", "erin")
        assert key.startswith(row.prefix)
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "admin.key.create"))
    revoked = run(home, "key", "revoke", row.prefix)
    assert revoked.returncode == 0 and row.prefix in revoked.stdout
    assert "revoked" in run(home, "key", "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("key", "create", "--user", "nobody", "--name", "x"), "no user named 'nobody'"),
        (
            ("key", "create", "--user", "admin", "--name", "x", "--expires-days", "0"),
            "--expires-days",
        ),
        (("model", "add", "m", "--path", "/nonexistent"), "not a model directory"),
        (("model", "add", "m", "--upstream", "ftp://x"), "not an http(s) URL"),
        (("model", "add", "m"), "exactly one of --path or --upstream"),
        (("model", "add", "bad name!", "--upstream", "http://x"), "a model name is"),
        # vLLM's options: what vLLM 0.8.5 would refuse, named by field (nothing written).
        (
            ("model", "add", "m", "--upstream", "http://x", "--tool-call-parser", "hermes2"),
            "error: tool_call_parser 'hermes2' is not one of vLLM 0.8.5's: granite,",
        ),
        (
            (
                "model",
                "add",
                "deepseek-v3",
                "--upstream",
                "http://x",
                "--tool-call-parser",
                "deepseek_v3",
            ),
            "tool_call_parser 'deepseek_v3' needs vLLM 0.9.0 or later",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--enable-auto-tool-choice"),
            "enable_auto_tool_choice needs a tool_call_parser",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--reasoning-parser", "r1"),
            "reasoning_parser 'r1' is not one of vLLM 0.8.5's: deepseek_r1, granite",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--chat-template", "t.jinja"),
            "chat_template must be the absolute path of a Jinja file",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--max-model-len", "32k"),
            "max_model_len must be a whole number of tokens",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--guided-decoding-backend", "xg"),
            "guided_decoding_backend 'xg' is not one of vLLM 0.8.5's",
        ),
        (
            ("model", "add", "m", "--upstream", "http://x", "--vllm-version", "0.7.3"),
            "vLLM 0.7.3 is outside the versions",
        ),
        (
            ("model", "add", "m", "--path", "/nonexistent", "--reasoning-parser", "granite"),
            "reasoning_parser is a vLLM option: a built-in model is served by the built-in",
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    home: Path, args: tuple[str, ...], message: str
) -> None:
    before = (home / "appliance.db").read_bytes()
    result = run(home, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    with database(home).session() as session:
        assert session.scalar(select(Model)) is None
        assert session.scalar(select(ApiKey)) is None
    assert len(before) > 0


def test_model_add_registers_builtin_and_upstream_models(home: Path, tiny_model: Path) -> None:
    assert run(home, "model", "add", "tiny", "--path", str(tiny_model)).returncode == 0
    assert (
        run(
            home,
            "model",
            "add",
            "big",
            "--upstream",
            "http://10.0.0.5:8000/v1",
            "--upstream",
            "http://10.0.0.6:8000",
        ).returncode
        == 0
    )
    again = run(home, "model", "add", "tiny", "--path", str(tiny_model))
    assert again.returncode == 1 and "already registered" in again.stderr
    listing = run(home, "model", "list").stdout
    assert "tiny\tbuiltin" in listing
    assert "big\topenai\thttp://10.0.0.5:8000, http://10.0.0.6:8000" in listing


def test_model_vllm_options_family_defaults_set_and_vllm_args(home: Path) -> None:
    added = run(home, "model", "add", "deepseek-r1-32b", "--upstream", "http://10.0.0.7:8200")
    assert added.returncode == 0, added.stderr
    assert "vLLM options: reasoning_parser=deepseek_r1" in added.stdout  # its family's
    qwen = run(
        home,
        *("model", "add", "qwen", "--upstream", "http://10.0.0.8:8200"),
        *("--tool-call-parser", "hermes", "--enable-auto-tool-choice"),
        *("--chat-template", "/etc/vllm/qwen.jinja", "--max-model-len", "32768"),
        *("--guided-decoding-backend", "xgrammar"),
    )
    assert qwen.returncode == 0, qwen.stderr
    assert run(home, "model", "add", "plain", "--upstream", "http://10.0.0.9:8200").returncode == 0
    listing = run(home, "model", "list").stdout.splitlines()
    assert "deepseek-r1-32b\topenai\thttp://10.0.0.7:8200\treasoning_parser=deepseek_r1" in listing
    assert "plain\topenai\thttp://10.0.0.9:8200" in listing

    def args(name: str, *extra: str) -> list[str]:
        done = run(home, "model", "vllm-args", name, *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert args("deepseek-r1-32b") == ["--enable-reasoning", "--reasoning-parser", "deepseek_r1"]
    assert args("deepseek-r1-32b", "--vllm-version", "0.9.2") == [
        "--reasoning-parser",
        "deepseek_r1",
    ]
    assert args("qwen") == [
        *("--max-model-len", "32768", "--tool-call-parser", "hermes"),
        *("--enable-auto-tool-choice", "--chat-template", "/etc/vllm/qwen.jinja"),
        *("--guided-decoding-backend", "xgrammar"),
    ]
    assert args("plain") == []
    # Changed field by field, audited; the same change again is no change.
    changed = run(home, "model", "set", "qwen", "--tool-call-parser", "none")
    assert changed.returncode == 0, changed.stderr
    assert "tool_call_parser 'hermes' -> None, enable_auto_tool_choice True -> False" in (
        changed.stdout
    )
    assert run(home, "model", "set", "qwen", "--tool-call-parser", "none").stdout == (
        "model qwen: unchanged\n"
    )
    refused = run(home, "model", "set", "qwen", "--reasoning-parser", "deepseek-r1")
    assert refused.returncode == 1 and "reasoning_parser 'deepseek-r1' is not one" in (
        refused.stderr
    )
    off = run(home, "model", "set", "deepseek-r1-32b", "--reasoning-parser", "none")
    assert off.returncode == 0 and args("deepseek-r1-32b") == []
    back = run(home, "model", "set", "deepseek-r1-32b", "--defaults")
    assert "reasoning_parser None -> 'deepseek_r1'" in back.stdout
    with database(home).session() as session:
        qwen_row = session.scalar(select(Model).where(Model.name == "qwen"))
        assert qwen_row is not None
        assert (qwen_row.tool_call_parser, qwen_row.enable_auto_tool_choice) == (None, False)
        assert (qwen_row.max_model_len, qwen_row.chat_template) == (32768, "/etc/vllm/qwen.jinja")
        sets = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "admin.model.set")
                .order_by(AuditEvent.seq)
            )
        )
        assert [e.target for e in sets] == ["qwen", "deepseek-r1-32b", "deepseek-r1-32b"]
        assert sets[0].details["changes"]["tool_call_parser"] == {"from": "hermes", "to": None}
    # Not registered yet (compose may start vLLM first): the family's options alone.
    unknown = run(home, "model", "vllm-args", "DeepSeek-R1-Distill-Llama-8B")
    assert unknown.stdout.split() == ["--enable-reasoning", "--reasoning-parser", "deepseek_r1"]
    assert "is not registered" in unknown.stderr


def test_commands_refuse_an_uninitialised_home(tmp_path: Path) -> None:
    result = run(tmp_path / "empty", "key", "list")
    assert result.returncode == 1
    assert "not initialised; run `appliance init` first" in result.stderr


def test_init_refuses_a_master_key_others_can_read(home: Path) -> None:
    (home / "keys" / "master.key").chmod(0o644)
    result = run(home, "init")
    assert result.returncode == 1
    assert "accessible by group or others" in result.stderr and "chmod 600" in result.stderr


def test_config_check_hides_secrets_and_names_bad_settings(home: Path) -> None:
    secret = "s" * 40
    shown = run(
        home,
        "config",
        "check",
        env={
            "APPLIANCE_SECRET_KEY": secret,
            "APPLIANCE_DATABASE_URL": "postgresql+psycopg://app:hunter2hunter2@db.internal/app",
        },
    )
    assert shown.returncode == 0, shown.stderr
    assert secret not in shown.stdout and "hunter2hunter2" not in shown.stdout
    assert "secret_key: **********" in shown.stdout
    assert "settings OK" in shown.stdout
    weak = run(home, "config", "check", env={"APPLIANCE_SECRET_KEY": "short"})
    assert weak.returncode == 1
    assert "APPLIANCE_SECRET_KEY" in weak.stderr and "at least 32 characters" in weak.stderr
    typo = run(home, "config", "check", env={"APPLIANCE_API_PROT": "1"})
    assert typo.returncode == 1 and "APPLIANCE_API_PROT" in typo.stderr


def test_config_file_is_read_and_validated(home: Path) -> None:
    config = home / "appliance.yaml"
    config.write_text("api_port: 9100\nportal_port: 9101\n")
    assert "api_port: 9100" in run(home, "config", "check").stdout
    # the environment wins over the file
    assert (
        "api_port: 9200" in run(home, "config", "check", env={"APPLIANCE_API_PORT": "9200"}).stdout
    )
    config.write_text("api_port: 9100\nportal_port: [oops\n")
    broken = run(home, "config", "check")
    assert broken.returncode == 1 and "line 2" in broken.stderr
    config.write_text("api_port: 9100\nfrobnicate: true\n")
    unknown = run(home, "config", "check")
    assert (
        unknown.returncode == 1
        and "frobnicate" in unknown.stderr
        and "unknown setting" in unknown.stderr
    )
    config.write_text("api_port: 9100\nportal_port: 9100\n")
    same = run(home, "config", "check")
    assert same.returncode == 1 and "must differ" in same.stderr


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
def test_alias_verbs_route_canaries_and_are_audited(home: Path) -> None:
    for name in ("base", "other"):
        assert run(home, "model", "add", name, "--upstream", "http://10.0.0.9:8000").returncode == 0
    created = run(
        home,
        "model",
        "alias",
        "assistant",
        "--target",
        "base+fin-v3=90@v3",
        "--target",
        "base+fin-v4=10@v4",
    )
    assert created.returncode == 0, created.stderr
    assert (
        "assistant\tbase+fin-v3=90@v3 base+fin-v4=10@v4" in run(home, "model", "alias-list").stdout
    )
    moved = run(home, "model", "alias-weights", "assistant", "v3=50", "v4=50")
    assert moved.returncode == 0, moved.stderr
    assert "base+fin-v3=50@v3 base+fin-v4=50@v4" in run(home, "model", "alias-list").stdout
    clash = run(home, "model", "alias", "base", "--target", "other=1")
    assert clash.returncode == 1 and "base" in clash.stderr
    bad = run(home, "model", "alias-weights", "assistant", "v3=lots")
    assert bad.returncode == 1 and "KEY=WEIGHT" in bad.stderr
    assert run(home, "model", "alias-rm", "assistant").returncode == 0
    assert "assistant" not in run(home, "model", "alias-list").stdout
    with database(home).session() as session:
        actions = [
            e.action
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.target == "assistant").order_by(AuditEvent.seq)
            )
        ]
    assert actions == ["admin.model.alias.set", "admin.model.alias.set", "admin.model.alias.delete"]


@pytest.mark.slow  # several seconds (subprocesses); in make test, not make check
def test_audit_seal_status_ship_and_verify(home: Path) -> None:
    """The audit verbs run end to end on a home (seal signs a checkpoint, ship writes the
    file sink, verify checks the chain in the database)."""
    assert run(home, "user", "create", "carol", "--role", "auditor").returncode == 0
    sealed = last_line(run(home, "audit", "seal"))
    assert sealed.startswith("sealed ") and "checkpoint signed" in sealed
    status = run(home, "audit", "status")
    assert status.returncode == 0, status.stderr
    assert "0 unsealed" in status.stdout and status.stdout.startswith("chain: sealed up to")
    shipped = last_line(run(home, "audit", "ship"))
    assert shipped.startswith("file: sent ") and "refused 0" in shipped
    assert last_line(run(home, "audit", "verify")).startswith("intact: ")
    unknown = run(home, "audit", "ship", "--sink", "nowhere")
    assert unknown.returncode != 0
