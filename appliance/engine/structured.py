"""Structured outputs: the text a request's format demands, enforced token by token.

A request's ``response_format`` (``json_object``, ``json_schema``), vLLM's ``guided_json``,
``guided_regex``, ``guided_choice`` and ``guided_grammar`` (or the same under vLLM's newer
``structured_outputs``) and the tool calls of ``tool_choice`` become one ``Guide``. The engine
compiles it with xgrammar (the library vLLM's default structured-output backend is built on,
CPU included) against the model's tokenizer, and at every step masks the logits of the tokens
that would leave the grammar, before the logprobs and the draw (as vLLM V1 applies its grammar
bitmask to the logits it samples from). The answer therefore always parses and validates, unless
``max_tokens`` or a stop string ends it first: then ``finish_reason`` says "length" (or "stop"
with the ``stop_reason``) and the text is a prefix of a valid one, as in vLLM.

As vLLM's xgrammar backend does: a JSON schema is compiled in xgrammar's strict mode (no
property or item the schema does not name), with any whitespace between tokens unless
``structured_outputs.disable_any_whitespace``; ``json_object`` is the schema
``{"type": "object"}``; ``guided_choice`` is a grammar of the choices as literals;
``guided_grammar`` is EBNF (GBNF), or Lark when it has no ``::=``.

Tool calls are written as Hermes models write them (``<tool_call>`` and a JSON object of
``name`` and ``arguments``, see ``tools``), as xgrammar structural tags: for ``tool_choice``
"auto" the text is free until the model opens ``<tool_call>``, then the call must be one of the
tools with arguments valid for its ``parameters``; "required" is one or more calls and nothing
else; a named choice is exactly one call of that function; ``parallel_tool_calls`` false is at
most one call.

xgrammar is imported only when a request needs it; this module's top level imports neither it
nor torch, so the protocol can build guides.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from appliance.errors import InvalidRequest

if TYPE_CHECKING:
    import torch

GuideKind = Literal["json", "regex", "ebnf", "lark", "structural_tag"]
JSON_OBJECT_SCHEMA = '{"type": "object"}'
# The Hermes tool-call layout (Qwen 2.5, Hermes 2 Pro, the tiny model's template).
TOOL_CALL_START, TOOL_CALL_END = "<tool_call>", "</tool_call>"
_CALL_BEGIN = TOOL_CALL_START + '\n{{"name": {name}, "arguments": '
_CALL_END = "}\n" + TOOL_CALL_END
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
CACHE_LIMIT_BYTES = 512 * 1024 * 1024  # compiled grammars kept (vLLM's VLLM_XGRAMMAR_CACHE_MB)
_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


@dataclass(frozen=True)
class Guide:
    """What the output must match: ``spec`` is a JSON schema (text), a regex, an EBNF or
    Lark grammar, or an xgrammar structural tag (JSON); ``param`` names the request field it
    came from (a 400 about it names that field)."""

    kind: GuideKind
    spec: str
    param: str
    any_whitespace: bool = True


def json_guide(schema: Any, param: str, *, any_whitespace: bool = True) -> Guide:
    """A JSON schema given as an object, a boolean or JSON text."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise InvalidRequest(f"'{param}' is not valid JSON: {exc}.", param=param) from exc
    if not isinstance(schema, dict | bool):
        raise InvalidRequest(f"'{param}' must be a JSON schema (an object).", param=param)
    return Guide("json", json.dumps(schema, ensure_ascii=False), param, any_whitespace)


def choice_guide(choices: Sequence[str], param: str) -> Guide:
    """One of ``choices``, exactly (vLLM's grammar of the choices as literals)."""
    if any(not isinstance(c, str) for c in choices):
        raise InvalidRequest(f"'{param}' must be a list of strings.", param=param)
    # JSON string literals are GBNF string literals too (\\n, \\", \\uXXXX...).
    literals = " | ".join(json.dumps(c, ensure_ascii=False) for c in choices)
    return Guide("ebnf", f"root ::= {literals}", param)


def grammar_guide(grammar: str, param: str) -> Guide:
    """EBNF (GBNF, rules written ``name ::= ...``), else Lark (as vLLM tells them apart)."""
    return Guide("ebnf" if "::=" in grammar else "lark", grammar, param)


def _call_tag(function: Mapping[str, Any]) -> dict[str, Any]:
    name = json.dumps(function["name"], ensure_ascii=False)
    parameters = function.get("parameters") or NO_PARAMETERS
    return {
        "type": "tag",
        "begin": _CALL_BEGIN.format(name=name),
        "content": {"type": "json_schema", "json_schema": parameters},
        "end": _CALL_END,
    }


def tool_call_guide(
    functions: Sequence[Mapping[str, Any]],
    mode: Literal["auto", "required", "named"],
    *,
    parallel: bool,
) -> Guide:
    """Tool calls of ``functions`` (OpenAI function definitions: ``name``, ``parameters``):
    free text with optional calls ("auto"), calls only ("required": at least one; "named":
    exactly one, of the one function given)."""
    tags = [_call_tag(f) for f in functions]
    if mode == "auto":
        fmt: dict[str, Any] = {
            "type": "triggered_tags",
            "triggers": [TOOL_CALL_START],
            "tags": tags,
            "at_least_one": False,
            "stop_after_first": not parallel,
        }
    else:
        fmt = {
            "type": "tags_with_separator",
            "tags": tags,
            "separator": "\n",
            "at_least_one": True,
            "stop_after_first": mode == "named" or not parallel,
        }
    spec = json.dumps({"type": "structural_tag", "format": fmt}, ensure_ascii=False)
    return Guide("structural_tag", spec, "tools")


def _detail(exc: Exception) -> str:
    """xgrammar's message without its log prefix ("[12:38:09] /project/cpp/x.cc:94: ")."""
    lines = str(exc).strip().splitlines()
    return _LOG_PREFIX.sub("", lines[0]) if lines else type(exc).__name__


def _describe(kind: GuideKind) -> str:
    return {
        "json": "JSON schema",
        "regex": "regular expression",
        "ebnf": "grammar",
        "lark": "grammar",
        "structural_tag": "tool definitions",
    }[kind]


# xgrammar 0.2.9 writes a length-bounded string's characters (maxLength, minLength) as
# [^"\\\r\n], which lets raw control characters into the string: not JSON (RFC 8259 §7).
# Its unbounded strings exclude them; so do these, once rewritten.
_LOOSE_CHARACTERS = r"[^\"\\\r\n]"
_JSON_CHARACTERS = r"[^\0-\x1f\"\\\r\n]"


def _json_strings(grammar: Any) -> Any:
    import xgrammar as xgr

    return xgr.Grammar.from_ebnf(str(grammar).replace(_LOOSE_CHARACTERS, _JSON_CHARACTERS))


def json_grammar(schema: Any, any_whitespace: bool) -> Any:
    """The grammar of a JSON schema, as xgrammar writes it but for string characters."""
    import xgrammar as xgr

    return _json_strings(xgr.Grammar.from_json_schema(schema, any_whitespace=any_whitespace))


def tags_grammar(spec: str) -> Any:
    """The grammar of a structural tag (tool calls), its JSON arguments' strings fixed too."""
    import xgrammar as xgr

    return _json_strings(xgr.Grammar.from_structural_tag(spec))


class Grammars:
    """Compiles guides for one tokenizer (xgrammar's compiler caches what it compiled) and
    makes the per-answer ``Constraint``."""

    def __init__(
        self, tokenizer: Any, vocab_size: int, stop_ids: Sequence[int], threads: int = 1
    ) -> None:
        self._tokenizer, self.vocab_size = tokenizer, vocab_size
        self._stop_ids, self._threads = sorted(stop_ids), threads
        self._compiler: Any = None
        self._lock = threading.Lock()

    def _get_compiler(self) -> Any:
        with self._lock:
            if self._compiler is None:
                import xgrammar as xgr

                info = xgr.TokenizerInfo.from_huggingface(
                    self._tokenizer, vocab_size=self.vocab_size, stop_token_ids=self._stop_ids
                )
                self._compiler = xgr.GrammarCompiler(
                    info, max_threads=self._threads, cache_limit_bytes=CACHE_LIMIT_BYTES
                )
            return self._compiler

    def compile(self, guide: Guide) -> Any:
        """The compiled grammar of ``guide``; a 400 naming its field if it does not compile."""
        compiler = self._get_compiler()
        try:
            if guide.kind == "json":
                return compiler.compile_grammar(json_grammar(guide.spec, guide.any_whitespace))
            if guide.kind == "regex":
                return compiler.compile_regex(guide.spec)
            if guide.kind == "ebnf":
                return compiler.compile_grammar(guide.spec)
            if guide.kind == "lark":
                return compiler.compile_lark(guide.spec)
            return compiler.compile_grammar(tags_grammar(guide.spec))
        except Exception as exc:  # xgrammar's RuntimeError, InvalidJSONError...
            raise InvalidRequest(
                f"Invalid {_describe(guide.kind)} in '{guide.param}': {_detail(exc)}",
                param=guide.param,
            ) from exc

    def constraint(self, compiled: Any) -> Constraint:
        return Constraint(compiled, self.vocab_size)


class Constraint:
    """One answer's place in its grammar: which next tokens are allowed, and the tokens taken."""

    def __init__(self, compiled: Any, vocab_size: int) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self._vocab_size = vocab_size
        self.stop_ids = frozenset(self._matcher.stop_token_ids)

    def mask(self, logits: torch.Tensor, *, ignore_eos: bool = False) -> torch.Tensor:
        """A copy of ``logits`` (one position) with every token the grammar forbids at -inf;
        with ``ignore_eos`` the stop tokens too, unless the grammar allows nothing else."""
        masked = logits.clone().unsqueeze(0)
        if self._matcher.fill_next_token_bitmask(self._bitmask):
            self._xgr.apply_token_bitmask_inplace(
                masked, self._bitmask, vocab_size=self._vocab_size
            )
        row = masked[0]
        if ignore_eos and self.stop_ids:
            stops = sorted(self.stop_ids)
            others = row.clone()
            others[stops] = float("-inf")
            if bool(others.isfinite().any()):
                return others
        return row

    def accept(self, token: int) -> None:
        """Advance past ``token`` (one the mask allowed)."""
        if not self._matcher.accept_token(token):
            raise RuntimeError(f"token {token} is outside the grammar")
