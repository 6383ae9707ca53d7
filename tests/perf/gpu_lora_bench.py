"""GPU benchmark (run by hand on a GPU machine): one LoRA training of a random-weight Llama
of about 300 M parameters with ``train_lora``, the seeds' LoRA (r=16, alpha=32 on q_proj and
v_proj). Prints a table and writes it as JSON to ``$OUT/gpu_lora.json`` (or the argument).

    PYTHONPATH=. python tests/perf/gpu_lora_bench.py [OUT.json]

Nothing is downloaded: the tokenizer is trained on the spot (appliance.engine.tiny) and
the weights are random; throughput does not depend on what the weights are.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

# Shape of a ~300 M-parameter Llama (the tiny tokenizer's 2,000-token vocabulary).
SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
RECORDS = 6000


def make_base(target: Path) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    from appliance.engine.tiny import END_OF_TURN, EOS, build_hf_tokenizer, corpus_lines

    tokenizer = build_hf_tokenizer(corpus_lines())
    eos = [tokenizer.convert_tokens_to_ids(t) for t in (EOS, END_OF_TURN)]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPE,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    from appliance.finetune.policy import Lora, Training
    from appliance.finetune.training import train_lora
    from tests.finetune import synthetic

    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", ".")) / "gpu_lora.json"
    assert torch.cuda.is_available(), "this benchmark needs a GPU"
    work = Path(tempfile.mkdtemp())
    params = make_base(work / "base")
    records = synthetic.tickets(RECORDS, 0)
    lora = Lora(r=16, alpha=32, dropout=0.05, target_modules=("q_proj", "v_proj"))
    results = {}
    for batch in (16, 64, 256):
        training = Training(
            learning_rate=3e-5,
            warmup_ratio=0.1,
            epochs=1,
            batch_size=batch,
            gradient_accumulation=1,
            checkpoint_every=50,
            max_seq_len=256,
        )
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = train_lora(
            work / "base", records, work / f"run-{batch}", lora=lora, training=training
        )
        wall = time.perf_counter() - started
        results[f"batch {batch}"] = {
            "steps": result.steps,
            "tokens": result.tokens,
            "tokens_per_s": round(result.tokens_per_s),
            "wall_s_with_load": round(wall, 2),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "first_loss": round(result.losses[0], 4),
            "last_loss": round(result.losses[-1], 4),
        }
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "parameters": params,
        "lora": "r=16 alpha=32 q_proj,v_proj (the seeds' defaults)",
        "records": RECORDS,
        "runs": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{'LoRA training, ~300M random Llama':<34} | " + " | ".join(results))
    for key in next(iter(results.values())):
        print(f"{key:<34} | " + " | ".join(str(r[key]) for r in results.values()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
