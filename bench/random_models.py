"""Qwen2-shaped models with random weights, for benches on machines without the Hugging Face Hub.

Each is built from its config (the public Qwen2.5 shapes), saved with the tiny local tokenizer,
and loaded back through `from_pretrained` like any hub model; the weights are random, so only
time and memory are meaningful, not what the model says.
"""

import torch

from stateset_hpo.grpo import build_tiny_model

_QWEN2 = dict(num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True)
SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, **_QWEN2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, **_QWEN2),
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16, **_QWEN2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 vocab_size=4096, max_position_embeddings=1024, tie_word_embeddings=True),
}


def build_model(folder: str, shape: dict, dtype: torch.dtype) -> int:
    """Save a random model of ``shape`` in ``dtype`` (built on the GPU when there is one: a
    1.5B model's random init takes a minute on CPUs) to ``folder``; its parameter count."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_model()))
    torch.manual_seed(0)
    config = Qwen2Config(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **shape)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM._from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    count = sum(p.numel() for p in model.parameters())
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return count
