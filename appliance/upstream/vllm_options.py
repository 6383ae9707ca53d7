"""vLLM's serving options that the model registry keeps per model, in one table.

These are the ``vllm serve`` flags that make tool calls, reasoning and structured output
work (and the context length). The table below is the one place they are checked, for
every way a model reaches vLLM: ``appliance model add/set`` (the gateway's registry), the
vllm role's units (its filter plugin loads this file by path, so this module imports
nothing but the standard library and also runs on Ansible's controller), and the compose
service (``appliance model vllm-args``, run by compose/vllm-entrypoint.sh).

The names are those vLLM 0.8.5 registers (the version the appliance deploys:
``vllm_package`` of the vllm role, ``VLLM_IMAGE`` of compose), read from its sources:
``vllm/entrypoints/openai/tool_parsers/`` (``@ToolParserManager.register_module``),
``vllm/reasoning/`` (``@ReasoningParserManager.register_module``),
``vllm/config.py`` (``GuidedDecodingBackendV0/V1``) and
``vllm/entrypoints/openai/cli_args.py`` (``--chat-template``, ``--enable-auto-tool-choice``
requires ``--tool-call-parser``). Names vLLM added later carry the version they arrived
in (checked against the wheels of 0.9.0, 0.9.1 and 0.9.2), so that a newer vLLM can be
given them and 0.8.5 refuses them with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VLLM_VERSION = "0.8.5"
# The versions whose flags this table renders correctly: from 0.8.5 (``--reasoning-parser``
# needs ``--enable-reasoning``) up to 0.10.0, which removed ``--enable-reasoning`` (0.9
# deprecated it: a reasoning parser alone turns reasoning on).
OLDEST = "0.8.5"
FIRST_UNSUPPORTED = "0.10.0"
REASONING_FLAG_DROPPED = "0.9.0"  # from here --reasoning-parser alone enables reasoning

TOOL_CALL_PARSER = "tool_call_parser"
ENABLE_AUTO_TOOL_CHOICE = "enable_auto_tool_choice"
REASONING_PARSER = "reasoning_parser"
CHAT_TEMPLATE = "chat_template"
MAX_MODEL_LEN = "max_model_len"
GUIDED_DECODING_BACKEND = "guided_decoding_backend"

CHAT_TEMPLATE_RE = re.compile(r"^/[A-Za-z0-9._+/-]{1,1023}$")
MAX_MODEL_LEN_LIMIT = 2**31 - 1  # the registry's integer column


class VllmOptionError(ValueError):
    """A vLLM option that vLLM would refuse (or that cannot be rendered); names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Option:
    """One registry field: the ``vllm serve`` flag it becomes and what it may be."""

    name: str
    flag: str
    kind: str  # "choice", "switch", "path" or "count"
    help: str
    # For a choice: each name vLLM accepts, with the first vLLM version that has it.
    choices: Mapping[str, str] = field(default_factory=dict)
    # Why a name is refused before that version, where "it was not there" is not why.
    notes: Mapping[str, str] = field(default_factory=dict)


# The table. Its order is the order of the flags on the command line.
OPTIONS: tuple[Option, ...] = (
    Option(
        MAX_MODEL_LEN,
        "--max-model-len",
        "count",
        "the context length in tokens (default: the model's own)",
    ),
    Option(
        TOOL_CALL_PARSER,
        "--tool-call-parser",
        "choice",
        "how vLLM turns the model's tool calls into OpenAI tool_calls (used with "
        "enable_auto_tool_choice)",
        {
            "granite": "0.8.5",
            "granite-20b-fc": "0.8.5",
            "hermes": "0.8.5",
            "internlm": "0.8.5",
            "jamba": "0.8.5",
            "llama3_json": "0.8.5",
            "llama4_json": "0.8.5",
            "mistral": "0.8.5",
            "phi4_mini_json": "0.8.5",
            "pythonic": "0.8.5",
            # Later (vLLM PR 17784 added deepseek_v3, released in 0.9.0; not in 0.8.5).
            "deepseek_v3": "0.9.0",
            "llama4_pythonic": "0.9.0",
            "minimax": "0.9.2",
            "xlam": "0.9.2",
        },
    ),
    Option(
        ENABLE_AUTO_TOOL_CHOICE,
        "--enable-auto-tool-choice",
        "switch",
        'tool_choice "auto": the model calls tools when it decides to (needs tool_call_parser)',
    ),
    Option(
        REASONING_PARSER,
        "--reasoning-parser",
        "choice",
        "separates the model's reasoning into reasoning_content (with --enable-reasoning "
        "before vLLM 0.9)",
        {"deepseek_r1": "0.8.5", "granite": "0.8.5", "qwen3": "0.9.0"},
    ),
    Option(
        CHAT_TEMPLATE,
        "--chat-template",
        "path",
        "absolute path of a Jinja chat template on the vLLM host (default: the tokenizer's)",
    ),
    Option(
        GUIDED_DECODING_BACKEND,
        "--guided-decoding-backend",
        "choice",
        "the structured-output engine of response_format/guided_json",
        {
            "auto": "0.8.5",
            "guidance": "0.8.5",
            "xgrammar": "0.8.5",
            # vLLM 0.8.5 has them (on its V0 engine), but its --guided-decoding-backend
            # takes its choices from one of Union[GuidedDecodingBackendV0, ...V1]'s two
            # Literals, whichever a set yields first: with Python's random hash seed, some
            # starts refuse them (3 seeds in 8 take them). 0.9.0 made that one Literal.
            "lm-format-enforcer": "0.9.0",
            "outlines": "0.9.0",
        },
        notes=dict.fromkeys(
            ("lm-format-enforcer", "outlines"),
            "vLLM 0.8.5's command line refuses it in some of its starts, by Python's hash seed",
        ),
    ),
)
BY_NAME = {option.name: option for option in OPTIONS}
FIELDS = tuple(option.name for option in OPTIONS)


@dataclass(frozen=True)
class Family:
    """Models recognised by name, and the options they get unless told otherwise."""

    name: str
    pattern: re.Pattern[str]
    defaults: Mapping[str, Any]


# Defaults by model family, matched on the model's names (its registry name and the name
# vLLM serves it as). A family's defaults apply only where the vLLM version has all of
# them: DeepSeek-V3's tool parser arrived in vLLM 0.9.0, so on 0.8.5 it gets none.
FAMILIES: tuple[Family, ...] = (
    # DeepSeek-R1 and its distills (DeepSeek-R1-Distill-Qwen/Llama-*): <think>...</think>.
    Family(
        "deepseek-r1",
        re.compile(r"deepseek[-_. ]?r1(?!\d)"),
        {REASONING_PARSER: "deepseek_r1"},
    ),
    # DeepSeek-V3 (V3-0324); not V3.1 or V3.2, whose tool calls vLLM parses differently.
    Family(
        "deepseek-v3",
        re.compile(r"deepseek[-_. ]?v3(?![.\d])"),
        {TOOL_CALL_PARSER: "deepseek_v3", ENABLE_AUTO_TOOL_CHOICE: True},
    ),
)


def parse_version(version: str) -> tuple[int, int, int]:
    """``0.8.5`` (also ``0.8.5.post1``, ``v0.9.2``) as a tuple; refuses what is not one."""
    found = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(version).strip())
    if found is None:
        raise VllmOptionError("vllm_version", f"{version!r} is not a vLLM version (like 0.8.5)")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def check_version(version: str) -> tuple[int, int, int]:
    parsed = parse_version(version)
    if not parse_version(OLDEST) <= parsed < parse_version(FIRST_UNSUPPORTED):
        raise VllmOptionError(
            "vllm_version",
            f"vLLM {version} is outside the versions whose flags the appliance knows "
            f"({OLDEST} up to, not including, {FIRST_UNSUPPORTED})",
        )
    return parsed


def available(option: Option, version: str) -> list[str]:
    """The names ``option`` may take on vLLM ``version``."""
    parsed = check_version(version)
    return sorted(name for name, since in option.choices.items() if parse_version(since) <= parsed)


def _choice(option: Option, value: Any, version: str) -> str:
    if not isinstance(value, str) or not value:
        raise VllmOptionError(option.name, f"{option.name} must be a name, not {value!r}")
    names = available(option, version)
    if value in names:
        return value
    since = option.choices.get(value)
    if since is not None:
        note = f" ({option.notes[value]})" if value in option.notes else ""
        raise VllmOptionError(
            option.name,
            f"{option.name} {value!r} needs vLLM {since} or later{note}; this deployment "
            f"runs vLLM {version} (which has: {', '.join(names)})",
        )
    raise VllmOptionError(
        option.name,
        f"{option.name} {value!r} is not one of vLLM {version}'s: {', '.join(names)}",
    )


def _value(option: Option, value: Any, version: str) -> Any:
    if option.kind == "choice":
        return _choice(option, value, version)
    if option.kind == "switch":
        if not isinstance(value, bool):
            raise VllmOptionError(option.name, f"{option.name} must be true or false")
        return value
    if option.kind == "path":
        if not isinstance(value, str) or not CHAT_TEMPLATE_RE.match(value) or ".." in value:
            raise VllmOptionError(
                option.name,
                f"{option.name} must be the absolute path of a Jinja file on the vLLM host "
                f"(letters, digits and . _ + - /, at most 1024 characters), not {value!r}",
            )
        return value
    # a count
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise VllmOptionError(option.name, f"{option.name} must be a whole number of tokens")
    if not 1 <= value <= MAX_MODEL_LEN_LIMIT:
        raise VllmOptionError(
            option.name, f"{option.name} must be between 1 and {MAX_MODEL_LEN_LIMIT} tokens"
        )
    return value


def validate(options: Mapping[str, Any], version: str = VLLM_VERSION) -> dict[str, Any]:
    """Every field of the table, checked: None (or False) where ``options`` has none.

    Raises VllmOptionError naming the first field vLLM ``version`` would refuse."""
    check_version(version)
    unknown = sorted(set(options) - set(FIELDS))
    if unknown:
        known = ", ".join(FIELDS)
        raise VllmOptionError(
            unknown[0], f"{unknown[0]!r} is not a vLLM option the registry keeps ({known})"
        )
    checked: dict[str, Any] = {}
    for option in OPTIONS:
        value = options.get(option.name)
        if value is None:
            checked[option.name] = False if option.kind == "switch" else None
        else:
            checked[option.name] = _value(option, value, version)
    if checked[ENABLE_AUTO_TOOL_CHOICE] and not checked[TOOL_CALL_PARSER]:
        raise VllmOptionError(
            ENABLE_AUTO_TOOL_CHOICE,
            "enable_auto_tool_choice needs a tool_call_parser (vLLM refuses to start without)",
        )
    return checked


def family_of(names: Iterable[str | None]) -> Family | None:
    """The first family one of ``names`` belongs to (None: no family)."""
    for name in names:
        text = (name or "").lower()
        for family in FAMILIES:
            if family.pattern.search(text):
                return family
    return None


def family_defaults(names: Iterable[str | None], version: str = VLLM_VERSION) -> dict[str, Any]:
    """The options of the family ``names`` belong to, if vLLM ``version`` has them all."""
    family = family_of(names)
    if family is None:
        return {}
    try:
        validate(family.defaults, version)
    except VllmOptionError as exc:
        if exc.field == "vllm_version":
            raise
        return {}
    return dict(family.defaults)


def resolve(
    names: Iterable[str | None], explicit: Mapping[str, Any], version: str = VLLM_VERSION
) -> dict[str, Any]:
    """A model's options: its family's defaults, then what was given, field by field
    (None: that flag off). Switching the family's tool_call_parser off also switches off
    the auto tool choice that came with it, unless that was given too."""
    defaults = family_defaults(names, version)
    if explicit.get(TOOL_CALL_PARSER, "") is None and ENABLE_AUTO_TOOL_CHOICE not in explicit:
        defaults.pop(ENABLE_AUTO_TOOL_CHOICE, None)
    return validate({**defaults, **explicit}, version)


def serve_args(options: Mapping[str, Any], version: str = VLLM_VERSION) -> list[str]:
    """The ``vllm serve`` arguments of checked ``options`` (the table's order)."""
    checked = validate(options, version)
    args: list[str] = []
    for option in OPTIONS:
        value = checked[option.name]
        if value is None or value is False:
            continue
        if option.kind == "switch":
            args.append(option.flag)
            continue
        if option.name == REASONING_PARSER and parse_version(version) < parse_version(
            REASONING_FLAG_DROPPED
        ):
            args.append("--enable-reasoning")
        args += [option.flag, str(value)]
    return args


def entry_args(entry: Mapping[str, Any], version: str = VLLM_VERSION) -> list[str]:
    """The arguments of a deployment's model entry (vllm role: an item of vllm_models):
    its family's defaults by ``name``, overridden by the table's keys the entry has."""
    explicit = {key: entry[key] for key in FIELDS if key in entry}
    return serve_args(resolve([entry.get("name")], explicit, version), version)
