"""The engine's OpenAI-compatible WSGI app and its gunicorn runner.

``create_app`` loads the model once and serves ``/health``, ``/v1/models``,
``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``; every failure leaves as an
OpenAI-style JSON error. LoRA adapters (see ``adapters``) are served under their own names, and
with ``LoraOptions.runtime_updates`` vLLM's ``/v1/load_lora_adapter`` and
``/v1/unload_lora_adapter`` exist. ``serve`` runs the app under gunicorn (one process).

Started by ``appliance serve``, the engine finds a random instance token in
``ENGINE_INSTANCE_TOKEN`` and returns it in the ``X-Engine-Instance`` header of every
response: readiness counts only the engine that run started, not whatever else answers on
its port.

Given ``EngineKeys`` (``serve`` always is), every route but ``/health`` (the liveness probe
of the supervisor and the gateway) requires ``Authorization: Bearer <engine key>``, as
vLLM's ``--api-key`` requires it on ``/v1/*``; anything else is a 401 in OpenAI's shape,
unknown paths included. The engine's own ``/tokenize`` is protected too (vLLM leaves its
one open).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from gunicorn.app.base import BaseApplication
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from appliance.engine import protocol as p
from appliance.engine.adapters import CONFIG_FILE, Adapter, LoraOptions, model_not_found
from appliance.engine.tools import ToolCallParser, finish_reason
from appliance.errors import (
    ApplianceError,
    AuthenticationFailed,
    ConfigError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from appliance.vault.engine_key import EngineKeys

log = logging.getLogger(__name__)
bp = Blueprint("engine", __name__)
lora_bp = Blueprint("engine_lora", __name__)
EXTENSION = "appliance.engine"
MAX_BODY_BYTES = 4 * 1024 * 1024
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
INSTANCE_ENV = "ENGINE_INSTANCE_TOKEN"  # set by the supervisor of `appliance serve`
INSTANCE_HEADER = "X-Engine-Instance"
OPEN_PATHS = frozenset({"/health"})  # liveness: no credential, nothing about the model
T = TypeVar("T")


class _Served:
    """What the routes need: the engine, the public model name, its creation time."""

    def __init__(self, engine: Any, name: str, root: str) -> None:
        self.engine, self.name, self.created, self.root = engine, name, p.now(), root


def create_app(
    model_dir: Path,
    served_model_name: str | None = None,
    lora: LoraOptions | None = None,
    keys: EngineKeys | None = None,
) -> Flask:
    """Build the engine app; the model in ``model_dir`` is loaded here, once, with the
    adapters of ``lora.modules`` (a failing one stops start-up, as in vLLM). With ``keys``
    every route but ``/health`` requires the engine key (without: an in-process app for
    tests, which nothing outside the process can reach)."""
    from appliance.engine.generation import Engine

    model_dir = Path(model_dir)
    lora = lora or LoraOptions()
    engine = Engine(model_dir, max_loras=lora.max_loras, max_lora_rank=lora.max_lora_rank)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    name = served_model_name or model_dir.resolve().name
    for lora_name, lora_path in lora.modules:
        try:
            engine.adapters.load(lora_name, lora_path, base_name=name)
        except ApplianceError as exc:
            engine.close()
            raise ConfigError(f"--lora-modules {lora_name}={lora_path}: {exc.message}") from exc
    app.extensions[EXTENSION] = _Served(engine, name, str(model_dir))
    app.register_blueprint(bp)
    if lora.runtime_updates:
        log.warning("LoRA adapters can be loaded and unloaded at runtime through the API.")
        app.register_blueprint(lora_bp)
    init_errors(app)
    init_credentials(app, keys)
    init_instance_header(app, os.environ.get(INSTANCE_ENV))
    return app


def init_credentials(app: Flask, keys: EngineKeys | None) -> None:
    """Refuse (401) every request but the liveness probe that lacks an accepted engine key."""
    if keys is None:
        return

    def require_key() -> None:
        if request.method == "OPTIONS" or request.path in OPEN_PATHS:
            return
        if not keys.accepts_header(request.headers.get("Authorization")):
            raise AuthenticationFailed(
                "This engine requires its engine key: 'Authorization: Bearer <engine key>'. "
                "Call the appliance's API instead."
            )

    app.before_request(require_key)


def init_instance_header(app: Flask, token: str | None) -> None:
    """Send ``token`` (if any) in every response: who started this engine can recognise it."""
    if not token:
        return

    def add_header(response: Response) -> Response:
        response.headers[INSTANCE_HEADER] = token
        return response

    app.after_request(add_header)


# ------------------------------------------------------------------ errors


def _render(err: ApplianceError) -> tuple[Response, int]:
    """The one place an error becomes a response."""
    return jsonify(err.to_openai()), err.status


def _from_http(exc: HTTPException) -> ApplianceError:
    where = f"{request.method} {request.path}"
    if exc.code == 404:
        return NotFound(f"Invalid URL ({where}).")
    if exc.code == 405:
        return MethodNotAllowed(f"Method not allowed ({where}).")
    if exc.code == 413:
        return PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    err = InvalidRequest(exc.description or exc.name)
    err.status = exc.code or 400
    return err


def _from_validation(exc: ValidationError) -> InvalidRequest:
    first = exc.errors(include_url=False)[0]
    loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in first["loc"])
    loc = loc.lstrip(".")
    msg = str(first["msg"]).removeprefix("Value error, ")
    if not loc:  # the body as a whole: not an object, or a rule across its fields
        if first["type"] == "value_error":
            return InvalidRequest(f"Invalid request: {msg}.")
        return InvalidRequest("The request body must be a JSON object.")
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{loc}'.", param=loc)
    return InvalidRequest(f"Invalid value for '{loc}': {msg}.", param=loc)


def _internal(exc: Exception) -> ApplianceError:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return ApplianceError("The server had an error while processing your request.")


def init_errors(app: Flask) -> None:
    """Register the handlers that turn every failure into an OpenAI error body."""
    app.register_error_handler(ApplianceError, _render)
    app.register_error_handler(HTTPException, lambda e: _render(_from_http(e)))
    app.register_error_handler(ValidationError, lambda e: _render(_from_validation(e)))
    app.register_error_handler(Exception, lambda e: _render(_internal(e)))


# ------------------------------------------------------------------ routes


def _served() -> _Served:
    served: _Served = current_app.extensions[EXTENSION]
    return served


def _json_body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"")
    except ValueError as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be valid JSON "
            f"({exc})."
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _check_model(served: _Served, model: str) -> Adapter | None:
    """The adapter a request's ``model`` names, None for the base model; else 404."""
    if model == served.name:
        return None
    adapter: Adapter | None = served.engine.adapters.get(model)
    if adapter is None:
        raise model_not_found(model)
    return adapter


def _sse(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Server-sent events, then ``[DONE]``; a failure mid-stream becomes an error event."""
    try:
        for event in events:
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
    except Exception:
        log.exception("error while streaming a completion")
        err = ApplianceError("The server had an error while processing your request.")
        yield f"data: {json.dumps(err.to_openai())}\n\n"
        return
    yield "data: [DONE]\n\n"


def _stream(events: Iterable[dict[str, Any]]) -> Response:
    return Response(_sse(events), mimetype="text/event-stream", headers=SSE_HEADERS)


@bp.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/v1/models")
def models() -> Response:
    served = _served()
    adapters = served.engine.adapters.listed()
    listed = p.model_list(
        served.name,
        served.created,
        root=served.root,
        max_model_len=served.engine.max_context,
        adapters=adapters,
    )
    return jsonify(listed)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    served = _served()
    req = p.ChatCompletionRequest.model_validate(_json_body())
    adapter = _check_model(served, req.model)
    engine = served.engine
    prompt = engine.chat_prompt(req.chat_messages(), **req.template_options())
    params = req.sampling()
    gens = engine.sample(prompt, params, req.candidates, adapter)
    rid, created, top_n = p.new_id("chatcmpl"), p.now(), params.logprobs
    names = req.token_text(engine.token_text)
    mode = req.tool_mode
    if req.stream:
        parsers = [None if mode is None else ToolCallParser(mode, req.parallel) for _ in gens]
        events = _chat_events(
            names, gens, parsers, rid, created, req.model, req.include_usage, top_n
        )
        return _stream(events)
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    for gen, (text, entries) in _best(gens, req.choices):
        logprobs = None if top_n is None else p.chat_logprobs(entries, names, top_n)
        if mode is None:
            choice = p.chat_choice(len(choices), text, gen.finish_reason, gen.stop_reason, logprobs)
        else:
            parser = ToolCallParser(mode, req.parallel)
            parser.feed(text)
            parser.finish()
            reason = finish_reason(mode, gen.finish_reason, parser)
            choice = p.chat_choice(
                len(choices), parser.content, reason, gen.stop_reason, logprobs,
                tool_calls=parser.tool_calls(),
            )  # fmt: skip
        choices.append(choice)
        completion_tokens += gen.completion_tokens
    use = p.usage(gens[0].prompt_tokens, completion_tokens)
    return jsonify(p.chat_completion(rid, created, req.model, choices, use))


def _best(gens: Sequence[Any], n: int) -> list[tuple[Any, tuple[str, list[p.TokenLogprob]]]]:
    """Run every answer; with more than ``n`` (``best_of``), the ``n`` whose tokens have
    the highest cumulative logprob, best first (as vLLM ranks them)."""
    ran = [(gen, gen.run()) for gen in gens]
    if len(ran) > n:
        ran.sort(key=lambda item: -item[0].cumulative_logprob)
    return ran[:n]


def _interleave(streams: Sequence[Iterable[T]]) -> Iterator[tuple[int, T | None]]:
    """Round-robin over ``streams``: (index, item), and (index, None) as each one ends."""
    active = [(i, iter(stream)) for i, stream in enumerate(streams)]
    while active:
        still = []
        for i, items in active:
            try:
                item = next(items)
            except StopIteration:
                yield i, None
                continue
            yield i, item
            still.append((i, items))
        active = still


def _logprobs(
    entries: Sequence[p.TokenLogprob], names: p.TokenText, top_n: int | None
) -> dict[str, Any] | None:
    return None if top_n is None else p.chat_logprobs(entries, names, top_n)


def _chat_events(
    names: p.TokenText,
    gens: Sequence[Any],
    parsers: Sequence[ToolCallParser | None],
    rid: str,
    created: int,
    model: str,
    include_usage: bool,
    top_n: int | None,
) -> Iterator[dict[str, Any]]:
    """Chunks per choice: content deltas, or with tools the deltas of ``parsers`` (content
    and tool calls; the logprobs of tokens held back go with the next delta)."""
    chunk = functools.partial(p.chat_chunk, rid, created, model, with_usage_field=include_usage)
    held: list[list[p.TokenLogprob]] = [[] for _ in gens]
    for i in range(len(gens)):
        yield chunk({"role": "assistant", "content": ""}, index=i)
    for i, piece in _interleave([gen.chunks() for gen in gens]):
        gen, parser = gens[i], parsers[i]
        if piece is None:
            reason = gen.finish_reason
            if parser is not None:
                for delta in parser.finish():
                    yield chunk(delta, index=i, logprobs=_logprobs(held[i], names, top_n))
                    held[i] = []
                reason = finish_reason(parser.mode, reason, parser)
            yield chunk(
                {}, reason, index=i, stop_reason=gen.stop_reason,
                logprobs=_logprobs(held[i], names, top_n) if held[i] else None,
            )  # fmt: skip
            continue
        if parser is None:
            yield chunk(
                {"content": piece.text}, index=i, logprobs=_logprobs(piece.logprobs, names, top_n)
            )
            continue
        held[i].extend(piece.logprobs)
        for delta in parser.feed(piece.text):
            yield chunk(delta, index=i, logprobs=_logprobs(held[i], names, top_n))
            held[i] = []
    if include_usage:
        use = p.usage(gens[0].prompt_tokens, sum(g.completion_tokens for g in gens))
        yield p.usage_chunk("chat.completion.chunk", rid, created, model, use)


@bp.post("/v1/completions")
def completions() -> Response:
    served = _served()
    req = p.CompletionRequest.model_validate(_json_body())
    adapter = _check_model(served, req.model)
    engine = served.engine
    params = req.sampling()
    top_n = params.logprobs
    prompt_top = top_n if req.echo else None
    groups = [
        (prompt, engine.sample(prompt, params, req.candidates, adapter, prompt_logprobs=prompt_top))
        for prompt in req.prompts()
    ]
    rid, created = p.new_id("cmpl"), p.now()
    names = req.token_text(engine.token_text)
    if req.stream:
        events = _completion_events(
            engine, names, groups, bool(req.echo), rid, created, req.model, req.include_usage, top_n
        )
        return _stream(events)
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for prompt, gens in groups:
        for gen, (text, entries) in _best(gens, req.choices):
            if req.echo:
                text, entries = _echo_text(engine, prompt) + text, [*gen.prompt_logprobs, *entries]
            logprobs = None
            if top_n is not None:
                logprobs = p.completion_logprobs(entries, names, top_n)[0]
            choice = p.completion_choice(
                len(choices), text, gen.finish_reason, gen.stop_reason, logprobs
            )
            choices.append(choice)
            completion_tokens += gen.completion_tokens
        prompt_tokens += gens[0].prompt_tokens
    use = p.usage(prompt_tokens, completion_tokens)
    return jsonify(p.text_completion(rid, created, req.model, choices, use))


def _echo_text(engine: Any, prompt: str | list[int]) -> str:
    """The prompt as ``echo`` returns it: the text sent, or the token ids decoded."""
    return prompt if isinstance(prompt, str) else str(engine.decode(prompt))


def _echoed(gen: Any, prompt_text: str) -> Iterator[p.Chunk]:
    """An answer's chunks, the first one led by the prompt (and its tokens' logprobs)."""
    first = True
    for piece in gen.chunks():
        if first:
            piece = p.Chunk(prompt_text + piece.text, (*gen.prompt_logprobs, *piece.logprobs))
            first = False
        yield piece
    if first:
        yield p.Chunk(prompt_text, gen.prompt_logprobs)


def _completion_events(
    engine: Any,
    names: p.TokenText,
    groups: Sequence[tuple[str | list[int], Sequence[Any]]],
    echo: bool,
    rid: str,
    created: int,
    model: str,
    include_usage: bool,
    top_n: int | None,
) -> Iterator[dict[str, Any]]:
    """Choice ``prompt index * n + i`` for answer i to each prompt, as vLLM numbers them."""
    chunk = functools.partial(
        p.completion_chunk, rid, created, model, with_usage_field=include_usage
    )
    gens = [gen for _, answers in groups for gen in answers]
    streams = [
        _echoed(gen, _echo_text(engine, prompt)) if echo else gen.chunks()
        for prompt, answers in groups
        for gen in answers
    ]
    offsets = [0] * len(streams)
    for i, piece in _interleave(streams):
        gen = gens[i]
        if piece is None:
            yield chunk("", gen.finish_reason, index=i, stop_reason=gen.stop_reason)
            continue
        logprobs = None
        if top_n is not None:
            logprobs, offsets[i] = p.completion_logprobs(piece.logprobs, names, top_n, offsets[i])
        yield chunk(piece.text, index=i, logprobs=logprobs)
    if include_usage:
        prompt_tokens = sum(answers[0].prompt_tokens for _, answers in groups)
        use = p.usage(prompt_tokens, sum(g.completion_tokens for g in gens))
        yield p.usage_chunk("text_completion", rid, created, model, use)


@bp.post("/tokenize")
def tokenize() -> Response:
    """vLLM's token counter: how many tokens the prompt of a request would take."""
    served = _served()
    req = p.TokenizeRequest.model_validate(_json_body())
    _check_model(served, req.model)
    engine = served.engine
    if req.messages:
        text = engine.chat_prompt(req.chat_messages(), tools=req.tool_dicts())
    else:
        text = req.prompt or ""
    ids = engine.encode(text)
    return jsonify({"count": len(ids), "max_model_len": engine.max_context, "tokens": ids})


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    served = _served()
    req = p.EmbeddingRequest.model_validate(_json_body())
    adapter = _check_model(served, req.model)
    engine = served.engine
    if req.dimensions is not None and req.dimensions != engine.embedding_size:
        raise InvalidRequest(
            f"This model does not support 'dimensions' other than {engine.embedding_size}.",
            param="dimensions",
        )
    ids = [engine.embedding_ids(item) for item in req.items()]
    vectors = [engine.embed(one, adapter) for one in ids]
    tokens = sum(len(one) for one in ids)
    return jsonify(p.embedding_list(req.model, vectors, req.encoding_format, tokens))


@lora_bp.post("/v1/load_lora_adapter")
def load_lora_adapter() -> Response:
    """vLLM's runtime load: 200 and a plain-text success line, or vLLM's error."""
    served = _served()
    req = p.LoadLoraAdapterRequest.model_validate(_json_body())
    served.engine.adapters.load(
        req.lora_name, req.lora_path, base_name=served.name, inplace=req.load_inplace
    )
    log.info("loaded LoRA adapter %r from %s", req.lora_name, req.lora_path)
    return _plain(f"Success: LoRA adapter '{req.lora_name}' added successfully.")


@lora_bp.post("/v1/unload_lora_adapter")
def unload_lora_adapter() -> Response:
    served = _served()
    req = p.UnloadLoraAdapterRequest.model_validate(_json_body())
    served.engine.adapters.unload(req.lora_name)
    log.info("unloaded LoRA adapter %r", req.lora_name)
    return _plain(f"Success: LoRA adapter '{req.lora_name}' removed successfully.")


def _plain(text: str) -> Response:
    return Response(text, status=200, mimetype="text/plain")


# ------------------------------------------------------------------ gunicorn


class _GunicornApp(BaseApplication):
    """gunicorn run programmatically: our options only, the app built in the worker."""

    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 27
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        return self._factory()


def serve(
    model_dir: Path,
    host: str,
    port: int,
    served_model_name: str | None = None,
    lora: LoraOptions | None = None,
    *,
    keys: EngineKeys,
) -> None:
    """Serve ``model_dir`` (and the adapters of ``lora``) on ``host:port`` until SIGTERM or
    SIGINT (blocking); every route but ``/health`` requires one of ``keys``."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir} is not a model directory (no config.json in it).")
    for lora_name, lora_path in lora.modules if lora else ():
        if not (Path(lora_path) / CONFIG_FILE).is_file():
            raise ConfigError(f"--lora-modules {lora_name}={lora_path}: no {CONFIG_FILE} there.")
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {
        "bind": bind,
        "workers": 1,
        "worker_class": "gthread",
        "threads": 8,
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "appliance-engine",
    }
    if not _is_loopback(host):
        log.warning("the engine listens on %s, not only the loopback: keep it off networks "
                    "that reach more than the gateway", host)  # fmt: skip
    factory = functools.partial(create_app, model_dir, served_model_name, lora, keys)
    try:
        _GunicornApp(factory, options).run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
