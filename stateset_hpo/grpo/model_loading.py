"""What the agent passes to `from_pretrained` besides the model's name, dtype and device:
`AgentConfig.model_init_kwargs` (TRL's name for the same thing), checked where it is set.

Honoured: ``quantization_config`` (bitsandbytes 4-bit or 8-bit, the QLoRA recipe: the base
weights load quantised and frozen, only LoRA adapters train), ``attn_implementation``
("eager", "sdpa", "flash_attention_2", ...) and ``revision``. Anything else is refused, not
passed on: `from_pretrained` takes a name it does not know as an override of the model's
config without a word, so a typo would change nothing and say nothing.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any, Dict, Mapping

HONOURED = ("quantization_config", "attn_implementation", "revision")
# loading arguments the agent's own settings decide
OWNED = {"dtype": "AgentConfig.dtype (--set dtype=...)", "torch_dtype": "AgentConfig.dtype (--set dtype=...)",
         "device_map": "AgentConfig.device (--set device=...; a quantised model loads onto it)",
         "trust_remote_code": "AgentConfig.trust_remote_code"}
QUANT_TYPES = ("fp4", "nf4")
QUANTISED_NEEDS_LORA = ("the model loads quantised (model_init_kwargs.quantization_config): its weights cannot "
                        "be trained, so trials must train LoRA adapters (use_lora=True; a TRL task a peft_config)")


def checked_init_kwargs(kwargs: Any) -> Dict[str, Any]:
    """``kwargs`` as the agent will pass them (a quantisation config as a plain dict, so the
    agent config stays JSON), or a ValueError naming the first thing wrong."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"AgentConfig.model_init_kwargs must be a mapping, got {kwargs!r}")
    out = {}
    for name, value in kwargs.items():
        if name in OWNED:
            raise ValueError(f"model_init_kwargs.{name}: the agent sets it from {OWNED[name]}")
        if name not in HONOURED:
            raise ValueError(f"model_init_kwargs.{name} is not passed to from_pretrained (it would read an unknown "
                             f"name as a model-config override, silently); honoured: {', '.join(HONOURED)}")
        if name == "quantization_config":
            out[name] = checked_quantization(value)
        elif not isinstance(value, str) or not value.strip():
            raise ValueError(f"model_init_kwargs.{name} must be a non-empty string, got {value!r}")
        else:
            out[name] = value
    return out


def checked_quantization(value: Any) -> Dict[str, Any]:
    """A bitsandbytes quantisation config (a dict or transformers' `BitsAndBytesConfig`) as a
    dict of its settings. Each key must be a BitsAndBytesConfig setting: its constructor
    would take an unknown one into ``**kwargs`` with only a log line."""
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):
        value = {k: v for k, v in value.to_dict().items() if not k.startswith("_")}
    if not isinstance(value, Mapping):
        raise ValueError(f"model_init_kwargs.quantization_config must be a mapping, got {value!r}")
    # (torch dtypes and enums by name, so the agent config stays plain JSON; BitsAndBytesConfig reads names)
    value = {k: str(v).removeprefix("torch.") if type(v).__name__ == "dtype" else getattr(v, "value", v)
             for k, v in value.items()}
    bits = [flag for flag in ("load_in_4bit", "load_in_8bit") if value.get(flag) is True]
    if value.get("quant_method", "bitsandbytes") != "bitsandbytes" or len(bits) != 1:
        raise ValueError("model_init_kwargs.quantization_config: only bitsandbytes loading is supported, with exactly "
                         "one of load_in_4bit: true (QLoRA) or load_in_8bit: true (a model saved quantised, GPTQ or "
                         f"AWQ, brings its own config), got {value!r}")
    from transformers import BitsAndBytesConfig

    known = (set(inspect.signature(BitsAndBytesConfig.__init__).parameters) - {"self", "kwargs"}) | {"quant_method"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"model_init_kwargs.quantization_config: {unknown[0]!r} is no BitsAndBytesConfig setting "
                         f"(settings: {', '.join(sorted(known))})")
    if value.get("bnb_4bit_quant_type", "fp4") not in QUANT_TYPES:
        raise ValueError(f"model_init_kwargs.quantization_config.bnb_4bit_quant_type must be one of "
                         f"{', '.join(QUANT_TYPES)}, got {value['bnb_4bit_quant_type']!r}")
    try:
        BitsAndBytesConfig(**{k: v for k, v in value.items() if k != "quant_method"})
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"model_init_kwargs.quantization_config: {exc}") from None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("model_init_kwargs.quantization_config needs bitsandbytes: pip install 'stateset-hpo[qlora]'")
    return value


def loads_quantised(config) -> bool:
    """Whether an AgentConfig loads its model quantised."""
    return "quantization_config" in config.model_init_kwargs


def is_quantised(model) -> bool:
    """Whether ``model``'s weights were loaded quantised (bitsandbytes 4-bit or 8-bit)."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def keep_cpu_weights_trainable(model) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference. On a CPU with AVX512-BF16,
    bitsandbytes (0.50) rewrites a Linear4bit's weights in place the first time it runs in eval
    mode (a rollout), and from then on every matmul goes through a kernel without a backward:
    LoRA gradients below that layer come out wrong with only a warning. Trials alternate
    rollouts and updates, so the repacking is turned off; GPU weights are not affected."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
