"""The registry's vLLM options (issue 19): the one table of what vLLM accepts, the model
families' defaults, the flags rendered per vLLM version, the registry functions, and the
compose entrypoint that appends a model's options to vLLM's command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.errors import InvalidRequest
from appliance.services import Services
from appliance.upstream import vllm_options as table
from appliance.upstream.registry import add_model, set_vllm_options, vllm_serve_args

ENTRYPOINT = Path(__file__).resolve().parents[2] / "compose" / "vllm-entrypoint.sh"


# --- the table: vLLM 0.8.5's names, and those that came later --------------------------


def test_the_table_has_vllm_085s_names() -> None:
    # Read from vLLM 0.8.5's wheel: the register_module names and DecodingConfig's backends.
    assert table.available(table.BY_NAME["tool_call_parser"], "0.8.5") == [
        "granite",
        "granite-20b-fc",
        "hermes",
        "internlm",
        "jamba",
        "llama3_json",
        "llama4_json",
        "mistral",
        "phi4_mini_json",
        "pythonic",
    ]
    assert table.available(table.BY_NAME["reasoning_parser"], "0.8.5") == ["deepseek_r1", "granite"]
    # outlines and lm-format-enforcer only where vLLM's command line always takes them.
    assert table.available(table.BY_NAME["guided_decoding_backend"], "0.8.5") == [
        "auto",
        "guidance",
        "xgrammar",
    ]
    assert table.available(table.BY_NAME["guided_decoding_backend"], "0.9.0") == [
        "auto",
        "guidance",
        "lm-format-enforcer",
        "outlines",
        "xgrammar",
    ]
    later = table.available(table.BY_NAME["tool_call_parser"], "0.9.0")
    assert {"deepseek_v3", "llama4_pythonic"} <= set(later)
    assert table.available(table.BY_NAME["reasoning_parser"], "0.9.2")[-1] == "qwen3"


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (["DeepSeek-R1"], "deepseek-r1"),
        (["deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"], "deepseek-r1"),
        (["DeepSeek-R1-Distill-Llama-8B"], "deepseek-r1"),
        (["deepseek-r1-32b"], "deepseek-r1"),
        (["assistant", "deepseek_r1_awq"], "deepseek-r1"),  # the served name counts too
        (["DeepSeek-V3-0324"], "deepseek-v3"),
        (["deepseek-v3"], "deepseek-v3"),
        (["DeepSeek-V3.1"], None),  # another tool-call format (deepseek_v31, later vLLM)
        (["DeepSeek-V3.2-Exp"], None),
        (["deepseek-r10"], None),
        (["deepseek-coder-v2"], None),
        (["deepseek"], None),
        (["llama-3.1-8b", None], None),
    ],
)
def test_families_are_recognised_by_name(names: list[str | None], family: str | None) -> None:
    found = table.family_of(names)
    assert (found.name if found else None) == family


def test_family_defaults_apply_only_where_vllm_has_them() -> None:
    assert table.family_defaults(["DeepSeek-R1-Distill-Qwen-7B"]) == {
        "reasoning_parser": "deepseek_r1"
    }
    assert table.family_defaults(["DeepSeek-V3-0324"]) == {}  # 0.8.5: no deepseek_v3 parser
    assert table.family_defaults(["DeepSeek-V3-0324"], "0.9.0") == {
        "tool_call_parser": "deepseek_v3",
        "enable_auto_tool_choice": True,
    }
    assert table.family_defaults(["qwen2.5"]) == {}


def test_flags_per_version() -> None:
    r1 = table.resolve(["deepseek-r1-32b"], {})
    assert table.serve_args(r1) == ["--enable-reasoning", "--reasoning-parser", "deepseek_r1"]
    assert table.serve_args(r1, "0.9.2") == ["--reasoning-parser", "deepseek_r1"]
    v3 = table.resolve(["DeepSeek-V3-0324"], {}, "0.9.2")
    assert table.serve_args(v3, "0.9.2") == [
        "--tool-call-parser",
        "deepseek_v3",
        "--enable-auto-tool-choice",
    ]
    # Switching the family's parser off also drops the auto tool choice it came with.
    assert table.resolve(["DeepSeek-V3-0324"], {"tool_call_parser": None}, "0.9.2") == {
        **dict.fromkeys(table.FIELDS),
        "enable_auto_tool_choice": False,
    }
    explicit = {
        "tool_call_parser": "pythonic",
        "enable_auto_tool_choice": True,
        "chat_template": "/opt/templates/tool_chat_template_llama3.2_pythonic.jinja",
        "max_model_len": "8192",  # Ansible may hand a templated number over as text
        "guided_decoding_backend": "guidance",
    }
    assert table.serve_args(table.resolve(["llama-3.2-3b"], explicit)) == [
        *("--max-model-len", "8192", "--tool-call-parser", "pythonic"),
        *("--enable-auto-tool-choice", "--chat-template"),
        *("/opt/templates/tool_chat_template_llama3.2_pythonic.jinja",),
        *("--guided-decoding-backend", "guidance"),
    ]
    assert table.serve_args(table.resolve(["llama-3.1-8b"], {})) == []


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"tool_call_parser": "Hermes"}, "tool_call_parser", "is not one of vLLM 0.8.5's"),
        ({"tool_call_parser": ""}, "tool_call_parser", "must be a name"),
        ({"tool_call_parser": "deepseek_v3"}, "tool_call_parser", "needs vLLM 0.9.0 or later"),
        ({"enable_auto_tool_choice": "yes"}, "enable_auto_tool_choice", "true or false"),
        ({"enable_auto_tool_choice": True}, "enable_auto_tool_choice", "needs a tool_call_parser"),
        ({"reasoning_parser": "qwen3"}, "reasoning_parser", "needs vLLM 0.9.0"),
        ({"chat_template": "{{ messages }}"}, "chat_template", "absolute path"),
        ({"chat_template": "/etc/a b.jinja"}, "chat_template", "absolute path"),
        ({"chat_template": "/etc/%i.jinja"}, "chat_template", "absolute path"),  # systemd
        ({"chat_template": "/etc/../x.jinja"}, "chat_template", "absolute path"),
        ({"chat_template": "/" + "a" * 1024}, "chat_template", "at most 1024"),
        ({"max_model_len": 0}, "max_model_len", "between 1 and"),
        ({"max_model_len": True}, "max_model_len", "whole number"),
        ({"max_model_len": 2**31}, "max_model_len", "between 1 and"),
        ({"guided_decoding_backend": "xgrammar:no-fallback"}, "guided_decoding_backend", "not"),
        ({"guided_decoding_backend": "outlines"}, "guided_decoding_backend", "in some of its"),
        ({"quantization": "awq"}, "quantization", "not a vLLM option the registry keeps"),
    ],
)
def test_what_vllm_would_refuse_is_refused_naming_the_field(
    options: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(table.VllmOptionError) as raised:
        table.validate(options)
    assert raised.value.field == field
    assert message in raised.value.message and field in raised.value.message


@pytest.mark.parametrize("version", ["0.8.4", "0.10.0", "1.0.0", "latest"])
def test_versions_outside_the_table_are_refused(version: str) -> None:
    with pytest.raises(table.VllmOptionError) as raised:
        table.validate({}, version)
    assert raised.value.field == "vllm_version"


def test_versions_inside_the_table() -> None:
    for version in ("0.8.5", "0.8.5.post1", "v0.9.0", "0.9.2"):
        assert table.validate({}, version)["enable_auto_tool_choice"] is False


def test_the_table_loads_alone_as_the_vllm_roles_filter_loads_it() -> None:
    """The vllm role's filter plugin loads the file by path on Ansible's controller:
    nothing but the standard library may be imported."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(Path(table.__file__))!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['t'] = m\n"
        "spec.loader.exec_module(m)\n"
        "print(m.entry_args({'name': 'deepseek-r1-32b', 'port': 1}))\n"
        "print(sorted(k for k in sys.modules if k.startswith('appliance')))\n"
    )
    done = subprocess.run(
        ["python3", "-I", "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert done.stdout.splitlines() == [
        "['--enable-reasoning', '--reasoning-parser', 'deepseek_r1']",
        "[]",
    ]


# --- the registry ---------------------------------------------------------------------


def test_the_registry_keeps_the_options_and_changes_them_atomically(
    sqlite_services: Services, tiny_model: Path
) -> None:
    with sqlite_services.db.session() as session:
        r1 = add_model(
            session,
            "r1",
            upstream_urls=["http://10.0.0.1:8200"],
            served_name="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            vllm={"max_model_len": 32768},
        )
        assert (r1.reasoning_parser, r1.max_model_len) == ("deepseek_r1", 32768)
        assert vllm_serve_args(r1) == [
            *("--max-model-len", "32768", "--enable-reasoning", "--reasoning-parser"),
            "deepseek_r1",
        ]
        with pytest.raises(InvalidRequest) as raised:
            set_vllm_options(r1, {"max_model_len": 4096, "tool_call_parser": "nope"})
        assert raised.value.param == "tool_call_parser"
        assert r1.max_model_len == 32768  # nothing changed
        assert set_vllm_options(r1, {"max_model_len": 4096}) == {"max_model_len": (32768, 4096)}
        assert set_vllm_options(r1, {"max_model_len": 4096}) == {}
        assert set_vllm_options(r1, {}, defaults=True) == {"max_model_len": (4096, None)}
        plain = add_model(session, "plain", upstream_urls=["http://10.0.0.2:8200"])
        assert vllm_serve_args(plain) == []
        tiny = add_model(session, "tiny", path=tiny_model)
        assert tiny.reasoning_parser is None and not tiny.enable_auto_tool_choice
        with pytest.raises(InvalidRequest, match="built-in engine"):
            set_vllm_options(tiny, {"reasoning_parser": "granite"})
        with pytest.raises(InvalidRequest) as refused:
            add_model(
                session,
                "v3",
                upstream_urls=["http://10.0.0.3:8200"],
                vllm={"tool_call_parser": "deepseek_v3"},
            )
        assert refused.value.param == "tool_call_parser" and "0.9.0" in refused.value.message
        v3 = add_model(
            session, "DeepSeek-V3-0324", upstream_urls=["http://h:1"], vllm_version="0.9.2"
        )
        assert (v3.tool_call_parser, v3.enable_auto_tool_choice) == ("deepseek_v3", True)


# --- compose: the entrypoint appends the registry's options ---------------------------

FAKE_APPLIANCE = """#!/bin/sh
# Stands in for the appliance CLI: records its calls, answers `model vllm-args`.
echo "$*" >> "$CALLS"
case "$1 $2" in
"vault unseal") mkdir -p "$5" ;;
"model vllm-args") [ -z "$REFUSE" ] || { echo "error: $REFUSE" >&2; exit 1; }
    printf '%s\\n' --max-model-len 32768 --chat-template /etc/vllm/my.jinja \\
        --enable-reasoning --reasoning-parser deepseek_r1 ;;
esac
"""
FAKE_VLLM = """#!/bin/sh
for arg in "$@"; do echo "$arg"; done > "$RECORD"
"""


def _entrypoint(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("appliance", FAKE_APPLIANCE), ("vllm", FAKE_VLLM)):
        (bin_dir / name).write_text(text, encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    full_env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VAULT_MODEL": "deepseek",
        "UNSEAL_DIR": str(tmp_path / "models" / "deepseek"),
        "CALLS": str(calls),
        "RECORD": str(tmp_path / "record"),
        **env,
    }
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "--served-model-name", "deepseek", "--port", "8000"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, calls


def test_the_compose_entrypoint_appends_the_registrys_options(tmp_path: Path) -> None:
    done, calls = _entrypoint(tmp_path, VLLM_VERSION="0.8.5", REGISTRY_MODEL="deepseek-r1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "record").read_text(encoding="utf-8").splitlines() == [
        *("serve", str(tmp_path / "models" / "deepseek")),
        *("--served-model-name", "deepseek", "--port", "8000"),
        *("--max-model-len", "32768", "--chat-template", "/etc/vllm/my.jinja"),
        *("--enable-reasoning", "--reasoning-parser", "deepseek_r1"),
    ]
    lines = calls.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "model vllm-args deepseek-r1 --vllm-version 0.8.5"  # before unsealing
    assert lines[1].startswith("vault wipe") and lines[2].startswith("vault unseal deepseek")


def test_the_compose_entrypoint_stops_before_unsealing_on_refused_options(
    tmp_path: Path,
) -> None:
    done, calls = _entrypoint(tmp_path, VLLM_VERSION="0.8.5", REFUSE="tool_call_parser ...")
    assert done.returncode == 1 and "error: tool_call_parser" in done.stderr
    assert calls.read_text(encoding="utf-8").splitlines() == [
        "model vllm-args deepseek --vllm-version 0.8.5"
    ]
    assert not (tmp_path / "record").exists()
    # Without vLLM in this Python the version cannot be told: it says so and stops.
    unknown, _ = _entrypoint(tmp_path, PYTHONPATH="/nonexistent")
    assert unknown.returncode == 1 and "set VLLM_VERSION" in unknown.stderr
