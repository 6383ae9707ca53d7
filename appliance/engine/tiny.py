"""Create a tiny random-weight Llama model with a tokenizer trained on the spot.

No weights can be downloaded on the appliance's build and test machines, so the
demo and the tests use a model made here: a byte-level BPE tokenizer trained on
the shipped corpus and a two-layer ``LlamaForCausalLM`` with random weights. It
is saved like any Hugging Face model, so the real loading code is exercised.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
END_OF_TURN = "<|end|>"
VOCAB_SIZE = 2000
CORPUS_FILES = ("corpus.txt",)

# Roles are system, user, assistant and tool (a tool's result, written as "<|tool|>",
# plain text: no special token of its own); content is a string or a list of text parts.
# With tools, a system turn lists them and asks for Hermes-style calls (as Qwen 2.5's
# template does, in fewer words: the tiny tokenizer spends a token on every 1.6 characters
# of such text): the system message's text, if the first message is one, comes first in
# that turn. An assistant's tool calls are written the same way after its text.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if tools %}"
    "<|system|>\n"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% if messages[0]['content'] is string %}{{ messages[0]['content'] }}"
    "{% else %}{% for part in messages[0]['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n\\n' }}"
    "{% endif %}"
    "Tools:\n"
    "{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}"
    'Call one as <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>'
    "<|end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('Unsupported role: ' + message['role']) }}"
    "{% endif %}"
    "{% if not (tools and loop.first and message['role'] == 'system') %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' and message['tool_calls'] %}"
    "{% for call in message['tool_calls'] %}"
    "{% set function = call['function'] if call['function'] is defined else call %}"
    "{% if message['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
    '<tool_call>\n{"name": {{ function[\'name\'] | tojson }}, "arguments": '
    "{% if function['arguments'] is string %}{{ function['arguments'] }}"
    "{% else %}{{ function['arguments'] | tojson }}{% endif %}"
    "}\n</tool_call>"
    "{% endfor %}{% endif %}"
    "<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    # Wider than the default 0.02 so that the output depends on the prompt.
    "initializer_range": 0.2,
}


def corpus_lines() -> list[str]:
    """The lines of the shipped training corpus (package data)."""
    root = resources.files("appliance.engine").joinpath("corpus")
    lines: list[str] = []
    for name in CORPUS_FILES:
        text = root.joinpath(name).read_text(encoding="utf-8")
        lines.extend(line for line in text.splitlines() if line.strip())
    return lines


def train_tokenizer(lines: list[str], vocab_size: int = VOCAB_SIZE) -> Any:
    """Train a byte-level BPE ``tokenizers.Tokenizer`` over ``lines``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[UNK, BOS, EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def build_hf_tokenizer(lines: list[str]) -> Any:
    """Wrap a freshly trained tokenizer for transformers, with the chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(lines),
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=TINY_SHAPE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def _build_model(tokenizer: Any, seed: int) -> Any:
    """A random-weight ``LlamaForCausalLM`` sized for the tokenizer, seeded."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in (EOS, END_OF_TURN)]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_SHAPE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def make_tiny(target: Path, *, seed: int = 0) -> Path:
    """Create a tiny Llama model and its tokenizer in ``target``; return ``target``.

    Raises ``FileExistsError`` if ``target`` exists and is not an empty directory.
    """
    from appliance.engine.generation import quiet_progress_bars

    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} already exists and is not empty")
    tokenizer = build_hf_tokenizer(corpus_lines())
    model = _build_model(tokenizer, seed)
    target.mkdir(parents=True, exist_ok=True)
    with quiet_progress_bars():
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
    return target
