"""`MultiTurnAgent`: a causal LM and its tokenizer, loaded through `from_pretrained`, that
turns a conversation into a prompt and samples replies.

The same path loads a hub model, a local folder, or the locally built tiny model. The
trainer wraps `agent.model` with a LoRA adapter (or trains it whole); a fresh agent loads
fresh weights, so trials that each build their own agent never share weights.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .config import AgentConfig
from .model_loading import is_quantised, keep_cpu_weights_trainable, loads_quantised
from .tiny_model import TINY_MODEL, build_tiny_model

Message = Dict[str, str]
# Used only for tokenizers that have no chat template of their own.
_PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@dataclass(frozen=True)
class SamplingSettings:
    """How replies are sampled (greedy when ``do_sample`` is False)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    repetition_penalty: float = 1.0
    batch_size: int = 256


@contextmanager
def without_lora_layers(model, merge: bool):
    """Run the model through its plain base layers: with the LoRA update folded into the
    weights (``merge=True``, the policy, for generation) or without it (the reference).

    Each LoRA wrapper is swapped out of its parent module for its base layer, so no peft code
    runs per token (it costs about a third of generation time on small models). peft's own
    merge_adapter/unmerge_adapter would fold the update in, but unmerging subtracts in place,
    so every rollout would nudge the frozen base weights, the KL reference, by rounding
    error. Here a merged layer is a shallow copy of the base layer holding a new weight
    tensor, so the base weights, which other trials' views may be reading at the same moment
    (grpo/model_pool.py), are never touched; the original modules are put back on exit. A
    model without LoRA layers is used as is, and so is a LoRA layer over quantised weights
    (QLoRA), which peft runs as base plus adapter.
    """
    import copy

    import torch
    from peft.tuners.lora import LoraLayer

    parents = {id(child): (parent, name) for parent in model.modules() for name, child in parent.named_children()}
    swapped = []
    try:
        for module in list(model.modules()):
            if not isinstance(module, LoraLayer) or id(module) not in parents:
                continue
            layer = module.get_base_layer()
            if merge and not layer.weight.is_floating_point():
                continue  # a quantised base (QLoRA) has no float weight to fold the update into: peft's layer runs
            if merge and not module.merged:
                merged = layer.weight.detach().clone()
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        merged += module.get_delta_weight(adapter).to(merged.dtype)
                layer = copy.copy(layer)
                layer._parameters = {**layer._parameters, "weight": torch.nn.Parameter(merged, requires_grad=False)}
            parent, name = parents[id(module)]
            setattr(parent, name, layer)
            swapped.append((parent, name, module))
        yield
    finally:
        for parent, name, module in reversed(swapped):
            setattr(parent, name, module)


def resolve_device_and_dtype(config: AgentConfig):
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"AgentConfig.device={config.device!r} but CUDA is not available on this machine")
    dtype = config.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return torch.device(device), getattr(torch, dtype)


@functools.lru_cache(maxsize=None)
def hub_model_status(name: str) -> str:
    """Where a Hub model name's weights will come from, checked on this machine: "cached
    locally", "on the Hub (not cached: each node downloads it)", or "not verified (the Hub
    cannot be reached from here)". A name the Hub does not know is a ValueError."""
    from huggingface_hub import model_info, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return "cached locally"
    try:
        model_info(name, timeout=10)
    except GatedRepoError:
        return "on the Hub, gated (the nodes need HF_TOKEN with access)"
    except RepositoryNotFoundError:
        raise ValueError(f"model {name!r} is neither a local path nor a model on the Hugging Face Hub (or it is "
                         "private and HF_TOKEN is not set)") from None
    except Exception:  # no network, a proxy, the Hub down: the trials' own download will tell
        return "not verified (the Hugging Face Hub cannot be reached from here)"
    return "on the Hub (not cached: each node downloads it)"


class MultiTurnAgent:
    def __init__(self, config: Optional[AgentConfig] = None) -> None:
        self.config = config or AgentConfig()
        self.model = None
        self.tokenizer = None
        self.device = None

    @property
    def initialized(self) -> bool:
        return self.model is not None

    def model_path(self, build: bool = True) -> str:
        """Where the weights come from; checks that a local path exists. The tiny model is
        built here on first use (not with ``build=False``, which only checks)."""
        name = self.config.model_name
        if name == TINY_MODEL:
            return str(build_tiny_model()) if build else name
        looks_local = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
        folder = Path(name).expanduser()
        if looks_local and not any((folder / f).is_file() for f in ("config.json", "adapter_config.json")):
            # adapter_config.json: a saved LoRA adapter, which transformers loads onto its base model
            raise ValueError(f"model path {name!r} does not exist or holds no config.json / adapter_config.json")
        if not looks_local:
            hub_model_status(name)  # a name the Hub does not know fails here, before any trial
        return str(Path(name).expanduser()) if looks_local else name

    def initialize(self) -> "MultiTurnAgent":
        """Load tokenizer and model (idempotent)."""
        if self.initialized:
            return self
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.model_path()
        self.device, dtype = resolve_device_and_dtype(self.config)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=self.config.trust_remote_code)
            init = dict(self.config.model_init_kwargs)
            if loads_quantised(self.config):  # bitsandbytes places the weights as it loads them; a
                init["device_map"] = {"": str(self.device)}  # quantised model cannot be moved afterwards
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype,
                                                         trust_remote_code=self.config.trust_remote_code, **init)
        except OSError as exc:
            raise ValueError(f"cannot load model {self.config.model_name!r}: {exc}") from None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not tokenizer.chat_template:
            tokenizer.chat_template = _PLAIN_TEMPLATE
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        if is_quantised(model):  # (already on its device: see above)
            keep_cpu_weights_trainable(model)
        else:
            model = model.to(self.device)
        self.model = model
        self.model.eval()
        return self

    # -- prompts and replies -------------------------------------------------------------------
    def prompt_ids(self, messages: Sequence[Message]) -> List[int]:
        """Token ids of the conversation followed by the start of the agent's turn, keeping
        the most recent ``max_prompt_length`` tokens."""
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.config.max_prompt_length:]

    def generate(self, prompts: Sequence[List[int]], settings: SamplingSettings) -> List[List[int]]:
        """One completion per prompt: its token ids up to and including the end-of-turn token."""
        import torch

        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        completions: List[List[int]] = []
        for start in range(0, len(prompts), settings.batch_size):
            chunk = prompts[start:start + settings.batch_size]
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=self.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=self.device)
            sampling = dict(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k) \
                if settings.do_sample else {}
            with torch.no_grad(), without_lora_layers(self.model, merge=True):
                out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=settings.do_sample,
                                          max_new_tokens=settings.max_new_tokens, pad_token_id=pad,
                                          eos_token_id=eos, repetition_penalty=settings.repetition_penalty,
                                          **sampling)
            for row in out[:, width:].tolist():
                completions.append(row[: row.index(eos) + 1] if eos in row else row)
        return completions

    def decode(self, completion: List[int]) -> str:
        return self.tokenizer.decode(completion, skip_special_tokens=True).strip()

    def respond(self, messages: Sequence[Message], max_new_tokens: int = 64) -> str:
        """The agent's greedy reply to a conversation."""
        self.initialize()
        settings = SamplingSettings(do_sample=False, max_new_tokens=max_new_tokens)
        return self.decode(self.generate([self.prompt_ids(messages)], settings)[0])
