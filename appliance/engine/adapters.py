"""LoRA adapters served beside the base model, loaded and unloaded at runtime.

The engine speaks vLLM's protocol: an adapter is a PEFT directory
(``adapter_config.json`` + ``adapter_model.safetensors``) served under its own
model name, loaded at start-up (``--lora-modules NAME=PATH``) or through
``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``, with vLLM's
messages and status codes. Requests name an adapter as their ``model``.

peft injects the adapters into the engine's one model; each forward pass selects
the adapter of its request (or none) under the engine's lock, so requests with
different adapters interleave on the compute thread. Until the first adapter is
loaded, and again once the last is gone, the model is the plain transformers
model: the base path costs nothing extra.

Everything about an adapter is checked (files, config, rank, target modules,
weight shapes) before the model is touched, outside the lock; a failure leaves
the engine as it was. An unloaded adapter's name is gone at once; its weights
leave the model when the last generation using it ends. Unlike vLLM, which keeps
``--max-loras`` adapters in an LRU cache and reloads evicted ones from disk, the
engine keeps every loaded adapter in memory and refuses a load beyond
``max_loras``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from appliance.engine import protocol as p
from appliance.errors import ApplianceError, ConfigError, NotFound

log = logging.getLogger(__name__)
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
if TYPE_CHECKING:  # torch stays out of the server's import (see the package docstring)
    import torch

_UNKNOWN = object()  # which adapter the layers have active: re-set on the next forward


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence peft's notes (the active adapter changed) and the deprecation warnings of
    transformers APIs it calls; nothing here is the caller's to act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class LoraError(ApplianceError):
    """An error of the adapter endpoints, shaped as vLLM's: ``type`` is vLLM's error
    name and ``code`` the HTTP status."""

    def __init__(self, message: str, *, status: int = 400, type_: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.type = type_

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": None,
                "code": self.status,
            }
        }


def model_not_found(name: str) -> NotFound:
    return NotFound(f"The model '{name}' does not exist.", param="model", code="model_not_found")


@dataclass(frozen=True)
class LoraOptions:
    """vLLM's LoRA options: ``--lora-modules``, ``--max-loras``, ``--max-lora-rank`` and
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` (``runtime_updates``), with vLLM's defaults."""

    modules: tuple[tuple[str, str], ...] = ()
    max_loras: int = 1
    max_lora_rank: int = 16
    runtime_updates: bool = False

    def __post_init__(self) -> None:
        if self.max_loras < 1 or self.max_lora_rank < 1:
            raise ConfigError("max_loras and max_lora_rank must be at least 1.")
        if len(self.modules) > self.max_loras:
            raise ConfigError(
                f"{len(self.modules)} LoRA modules are given but max_loras is {self.max_loras}."
            )


def parse_lora_module(text: str) -> tuple[str, str]:
    """``NAME=PATH`` as vLLM's ``--lora-modules`` takes it."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"LoRA module {text!r}: expected NAME=PATH.")
    return name.strip(), path.strip()


@dataclass
class Adapter:
    """One loaded adapter; ``key`` is its name inside peft (unique per load)."""

    name: str
    path: str
    key: str
    rank: int
    created: int = field(default_factory=p.now)
    refs: int = 0
    retired: bool = False


class _Prepared(NamedTuple):
    config: Any  # peft.LoraConfig
    weights: dict[str, torch.Tensor]
    rank: int


class Adapters:
    """The adapters of one engine's model; thread-safe.

    ``lock`` is the engine's lock: every change to the model and every forward pass
    holds it, and ``activate`` is called under it before each forward pass.
    """

    def __init__(self, model: Any, lock: threading.Lock, *, max_loras: int, max_lora_rank: int):
        self._model = model
        self._lock = lock
        self.max_loras, self.max_lora_rank = max_loras, max_lora_rank
        self._admin = threading.Lock()  # one load or unload at a time
        self._state = threading.RLock()  # names, reference counts, pending removals
        self._by_name: dict[str, Adapter] = {}
        self._pending: set[str] = set()
        self._keys = itertools.count(1)
        self._peft: Any = None  # the PeftModel while any adapter is in the model
        self._layers: list[Any] = []  # the layers peft wrapped
        self._active: object = None
        import torch

        # What adapters may target, from the plain model: name -> (in, out) features.
        self._linear = {
            name: (module.in_features, module.out_features)
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        }

    # ----------------------------------------------------------- names

    def get(self, name: str) -> Adapter | None:
        with self._state:
            return self._by_name.get(name)

    def listed(self) -> list[Adapter]:
        with self._state:
            return list(self._by_name.values())

    @contextlib.contextmanager
    def using(self, adapter: Adapter | None) -> Iterator[str | None]:
        """Hold ``adapter`` in the model for the block; yields its key (None: the base)."""
        if adapter is None:
            yield None
            return
        with self._state:
            if adapter.retired:
                raise model_not_found(adapter.name)
            adapter.refs += 1
        try:
            yield adapter.key
        finally:
            with self._state:
                adapter.refs -= 1
                if adapter.retired and adapter.refs == 0:
                    self._pending.add(adapter.key)

    # ----------------------------------------------------------- load / unload

    def load(self, name: str, path: str, *, base_name: str, inplace: bool = False) -> Adapter:
        """Load the adapter in ``path`` as ``name`` (vLLM's ``load_lora_adapter``); with
        ``inplace`` a loaded ``name`` is replaced (generations using it finish with it)."""
        if not name or not path:
            raise LoraError("Both 'lora_name' and 'lora_path' must be provided.")
        with self._admin:
            with self._state:
                replaced = self._by_name.get(name) if inplace else None
                if name in self._by_name and not inplace:
                    raise LoraError(
                        f"The lora adapter '{name}' has already been loaded. If you want to "
                        "load the adapter in place, set 'load_inplace' to True."
                    )
                if name == base_name:
                    raise LoraError(f"'{name}' is the name of the base model.")
                if len(self._by_name) - (replaced is not None) >= self.max_loras:
                    raise LoraError(
                        f"Loading lora {name} failed: {len(self._by_name)} adapters are loaded "
                        f"and max_loras is {self.max_loras}; unload one first."
                    )
            prepared = self._prepare(name, path)
            adapter = Adapter(name, path, f"lora{next(self._keys)}", prepared.rank)
            with self._lock:
                self._purge_locked()
                self._inject_locked(name, adapter.key, prepared)
            with self._state:
                self._by_name[name] = adapter
                if replaced is not None:
                    self._retire(replaced)
            return adapter

    def unload(self, name: str) -> None:
        """Unload ``name`` (vLLM's ``unload_lora_adapter``); generations using it finish."""
        if not name:
            raise LoraError("'lora_name' needs to be provided to unload a LoRA adapter.")
        with self._admin:
            with self._state:
                adapter = self._by_name.pop(name, None)
                if adapter is None:
                    raise LoraError(
                        f"The lora adapter '{name}' cannot be found.",
                        status=404,
                        type_="NotFoundError",
                    )
                self._retire(adapter)
            with self._lock:
                self._purge_locked()

    def _retire(self, adapter: Adapter) -> None:
        with self._state:
            adapter.retired = True
            if adapter.refs == 0:
                self._pending.add(adapter.key)

    def _prepare(self, name: str, path: str) -> _Prepared:
        """Read and check the adapter without touching the model."""
        from peft import LoraConfig
        from peft.tuners.tuners_utils import check_target_module_exists
        from safetensors.torch import load_file

        directory = Path(path)
        if not (directory / CONFIG_FILE).is_file():
            raise LoraError(
                f"Loading lora {name} failed: No adapter found for {path}",
                status=404,
                type_="NotFoundError",
            )

        def failed(reason: str) -> LoraError:
            return LoraError(f"Loading lora {name} failed: {reason}")

        try:
            raw = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise failed(f"{CONFIG_FILE} is not valid JSON ({exc}).") from exc
        if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
            kind = raw.get("peft_type") if isinstance(raw, dict) else None
            raise failed(f"{path} is not a LoRA adapter (peft_type {kind!r}).")
        try:
            config = LoraConfig.from_pretrained(str(directory))
        except Exception as exc:  # peft raises TypeError/ValueError for bad fields
            raise failed(f"invalid {CONFIG_FILE} ({exc}).") from exc
        rank = max([int(config.r), *(int(r) for r in (config.rank_pattern or {}).values())])
        if rank > self.max_lora_rank:
            raise LoraError(f"LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.")
        if config.bias != "none" or config.modules_to_save:
            raise failed("adapters with a bias or modules_to_save are not supported.")
        targets = [n for n in self._linear if check_target_module_exists(config, n)]
        wanted = config.target_modules
        unexpected = (
            sorted(t for t in wanted if not any(n.rsplit(".", 1)[-1] == t for n in targets))
            if isinstance(wanted, (set, list, tuple))
            else ([] if targets else [str(wanted)])
        )
        if unexpected or not targets:
            supported = sorted({n.rsplit(".", 1)[-1] for n in self._linear})
            raise failed(
                f"While loading {path}, expected target modules in {supported} but received "
                f"{unexpected or sorted(wanted or [])}. Please verify that the loaded LoRA "
                "module is correct"
            )
        if not (directory / WEIGHTS_FILE).is_file():
            raise failed(f"{path} has no {WEIGHTS_FILE}.")
        try:
            weights = load_file(str(directory / WEIGHTS_FILE))
        except Exception as exc:
            raise failed(f"{WEIGHTS_FILE} is not readable ({exc}).") from exc
        self._check_shapes(weights, targets, failed)
        return _Prepared(config, weights, rank)

    def _check_shapes(
        self, weights: dict[str, torch.Tensor], targets: list[str], failed: Any
    ) -> None:
        seen: set[str] = set()
        for key, tensor in weights.items():
            module, sep, part = key.removeprefix("base_model.model.").rpartition(".lora_")
            if not sep or part not in ("A.weight", "B.weight"):
                continue  # other tensors (e.g. DoRA magnitudes) are checked by peft
            if module not in targets:
                raise failed(
                    "the adapter does not fit the served model: it has weights for "
                    f"{module}, which the model does not have or the config does not target."
                )
            seen.add(module)
            n_in, n_out = self._linear[module]
            shape = tuple(tensor.shape)
            fits = (
                len(shape) == 2 and shape[1] == n_in
                if part == "A.weight"
                else len(shape) == 2 and shape[0] == n_out
            )
            if not fits:
                raise failed(
                    f"the adapter does not fit the served model: {key} has shape {list(shape)} "
                    f"but {module} maps {n_in} to {n_out} features."
                )
        missing = sorted(set(targets) - seen)
        if missing:
            raise failed(f"the adapter has no weights for {missing[0]}.")

    def _inject_locked(self, name: str, key: str, prepared: _Prepared) -> None:
        from peft import get_peft_model, set_peft_model_state_dict

        try:
            with _quiet():
                if self._peft is None:
                    self._peft = get_peft_model(self._model, prepared.config, adapter_name=key)
                else:
                    self._peft.add_adapter(key, prepared.config)
            result: Any = set_peft_model_state_dict(self._peft, prepared.weights, adapter_name=key)
            missing = [k for k in result.missing_keys if f".{key}." in k]
            if result.unexpected_keys or missing:
                raise ValueError(
                    f"weights that do not fit: {(result.unexpected_keys or missing)[0]}"
                )
        except Exception as exc:
            log.warning("loading LoRA %r failed; rolling back", name, exc_info=True)
            self._remove_locked(key)
            if self._peft is None:
                self._strip_locked()
            raise LoraError(f"Loading lora {name} failed: {exc}") from exc
        finally:
            self._model.eval()  # new LoRA layers start in training mode (dropout)
            self._active = _UNKNOWN
            self._find_layers()

    def _find_layers(self) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = self._model.modules() if self._peft is not None else ()
        self._layers = [m for m in layers if isinstance(m, BaseTunerLayer)]

    # ----------------------------------------------------------- under the engine's lock

    def activate(self, key: str | None) -> None:
        """Make the layers compute with adapter ``key`` (None: the base). Holds the lock.

        Only peft's wrapped layers are visited (kept in a list), and only on a change."""
        if self._pending:
            self._purge_locked()
        if self._peft is None or key == self._active:
            return
        enable = key is not None and (self._active is None or self._active is _UNKNOWN)
        for layer in self._layers:
            if key is None:
                layer.enable_adapters(False)
                continue
            if enable:
                layer.enable_adapters(True)
            layer.set_adapter(key, inference_mode=True)
        self._active = key

    def _purge_locked(self) -> None:
        with self._state:
            keys, self._pending = self._pending, set()
        for key in keys:
            self._remove_locked(key)

    def _remove_locked(self, key: str) -> None:
        peft = self._peft
        if peft is None:
            return
        with _quiet():
            if key in peft.peft_config:
                peft.delete_adapter(key)
                self._active = _UNKNOWN
            if not peft.peft_config:  # the last one: back to the plain model
                peft.unload()
                self._peft, self._active = None, None
                self._strip_locked()
        self._find_layers()

    def _strip_locked(self) -> None:
        """Put back every base layer peft may have wrapped (a failed first injection)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        wrapped = [n for n, m in self._model.named_modules() if isinstance(m, BaseTunerLayer)]
        for name in wrapped:
            parent_name, _, child = name.rpartition(".")
            parent = self._model.get_submodule(parent_name)
            setattr(parent, child, getattr(parent, child).get_base_layer())
        if "peft_config" in vars(self._model):
            del self._model.peft_config
