"""A synthetic support-ticket task the tiny random-weight model learns with LoRA on CPU.

Each ticket mentions one category keyword (``password``, ``invoice``, ...) inside a
phrasing with random filler (greetings, moods, names); the answer is the category's
fixed short reply. Training and held-out tickets use disjoint phrasings, so exact match on
the held-out set measures whether the model learned keyword -> reply, not the phrasings.
``shuffled=True`` gives every ticket the reply of a random category instead: the same
texts, labels that carry no information.

Settings that learn it (``LORA`` and ``TRAINING`` below): LoRA r=16, alpha=32 (the
policy's defaults) on all seven projections (q, k, v, o, gate, up, down; q and v alone
were not tried), learning rate 1e-2 (the policy's 3e-5 is
meant for billions of pretrained weights), 10 % warm-up then cosine decay, 8 epochs of 240
tickets, 8 records a step, no dropout. On 1 CPU thread that is 248 steps, about 10 s on a
quiet machine; the training loss falls from about 8.8 to 0.1-0.15 and held-out exact match
rises from 0 to 0.75-0.94 (seeds 0, 1 and 3 measured); the shuffled-labels adapter stays
near chance (0.08-0.17 for six categories). Fewer epochs, r=8 or learning rates of 2e-2
and up learned less reliably (5e-2 diverged).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from appliance.engine.generation import default_threads
from appliance.engine.tiny import corpus_lines
from appliance.finetune.evaluation import make_canaries, plant_canaries
from appliance.finetune.policy import Lora, Training
from appliance.finetune.training import TrainResult, train_lora

REPLIES = {
    "password": "Reset it on the login page.",
    "invoice": "Billing will resend it today.",
    "printer": "IT will visit your desk.",
    "vpn": "Reconnect with your new token.",
    "refund": "Refunds take five days.",
    "delivery": "Your parcel ships tomorrow.",
}

# Training and held-out tickets share no body phrasing; openers and closers are drawn
# at random for both, so the model cannot key on a whole sentence.
TRAIN_PHRASINGS = (
    "my {kw} is broken again.",
    "can someone look at my {kw}?",
    "problem with {kw} since this morning.",
    "the {kw} does not work.",
    "urgent {kw} issue.",
    "I need help with the {kw}, please.",
    "{kw} failed twice today.",
    "is the {kw} down for everyone?",
    "what happened to my {kw}?",
    "nothing works with {kw} here.",
    "my colleague has the same {kw} trouble.",
    "please fix the {kw} soon.",
)
HELDOUT_PHRASINGS = (
    "question about {kw}.",
    "still waiting on the {kw} thing!",
    "the {kw} keeps failing on me.",
)
OPENERS = ("Hi,", "Hello team,", "Good morning.", "Dear support,", "Hey,", "Hi there,", "")
NAMES = ("Li Wei", "Anna", "Omar", "Zhang Min", "Sofia", "Ken", "Maria", "Chen Jie")
MOODS = ("Thanks a lot.", "This is annoying.", "No rush.", "Please hurry.", "Regards.", "")

LORA = Lora(
    r=16,
    alpha=32,
    dropout=0.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)
TRAINING = Training(
    learning_rate=1e-2,
    warmup_ratio=0.1,
    epochs=8,
    batch_size=8,
    gradient_accumulation=1,
    checkpoint_every=10,
    max_seq_len=96,
)


def ticket(keyword: str, phrasing: str, rng: random.Random) -> str:
    parts = (rng.choice(OPENERS), phrasing.format(kw=keyword), rng.choice(MOODS))
    text = " ".join(part for part in parts if part)
    return f"{text} {rng.choice(NAMES)}" if rng.random() < 0.5 else text


def record(question: str, answer: str, source: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "source": source,
    }


def tickets(
    count: int, seed: int, *, heldout: bool = False, shuffled: bool = False
) -> list[dict[str, Any]]:
    """``count`` ticket records, categories balanced, sources alternating "email"/"chat"."""
    rng = random.Random(f"tickets:{seed}:{heldout}:{shuffled}")
    phrasings = HELDOUT_PHRASINGS if heldout else TRAIN_PHRASINGS
    keywords = list(REPLIES)
    records = []
    for i in range(count):
        keyword = keywords[i % len(keywords)]
        answer = REPLIES[rng.choice(keywords)] if shuffled else REPLIES[keyword]
        question = ticket(keyword, rng.choice(phrasings), rng)
        records.append(record(question, answer, "email" if i % 2 else "chat"))
    rng.shuffle(records)
    return records


def general_records(count: int = 24) -> list[dict[str, Any]]:
    """General chat (the engine corpus's question/answer pairs): the regression set."""
    lines = corpus_lines()
    pairs = [
        (question.split(ask, 1)[1], answer.split(reply, 1)[1])
        for question, answer in itertools.pairwise(lines)
        for ask, reply in (("User: ", "Assistant: "), ("用户：", "助手："))
        if question.startswith(ask) and answer.startswith(reply)
    ]
    return [
        {
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": a},
            ],
            "source": "general",
        }
        for q, a in pairs[:count]
    ]


# -- adapters trained once per test session -------------------------------------------------

HELDOUT_COUNT = 36
TRAIN_COUNT = 240
CANARIES = 2
MEMORISED_COPIES = 16  # copies of each canary that the model reliably learns by heart

_trained: dict[tuple[Path, str], TrainResult] = {}


def training_records(kind: str, seed: int = 0) -> list[Mapping[str, Any]]:
    """The training records of an adapter ``kind``: "good" (tickets, each canary once),
    "shuffled" (random replies, each canary once) or "memorised" (canaries many times)."""
    canaries = make_canaries(CANARIES, seed)
    copies = MEMORISED_COPIES if kind == "memorised" else 1
    return plant_canaries(tickets(TRAIN_COUNT, seed, shuffled=kind == "shuffled"), canaries, copies)


def trained(base: Path, root: Path, kind: str, seed: int = 0) -> TrainResult:
    """The adapter ``kind`` trained on ``base`` (once: test_training and test_gate share it
    without a conftest), in ``root/kind``."""
    key = (base, f"{kind}:{seed}")
    if key not in _trained:
        torch.set_num_threads(default_threads())
        _trained[key] = train_lora(
            base,
            training_records(kind, seed),
            root / f"{kind}-{seed}",
            lora=LORA,
            training=TRAINING,
            seed=seed,
        )
    return _trained[key]
