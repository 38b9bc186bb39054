"""A tiny local causal LM for tests, demos and CPU runs: machines here cannot download weights.

`build_tiny_model()` trains a word-level tokenizer on the scenario texts, builds a 2-layer
Llama from a config with random weights, and gives it a short supervised warm-up on
conversations whose agent replies are a deliberate mix of good and bad ones (helpful,
generic, unsafe, off-topic, rude, rambling). GRPO then starts from a model that emits words
and samples replies of varied quality, and has something to learn: make the good ones
likely. The result is saved with `save_pretrained` and loaded back by the same
`from_pretrained` path as any hub model. It is cached by a fingerprint of everything that
shapes it, and built atomically, so concurrent trials share one copy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .config import TINY_MODEL, AgentConfig
from .environment import ConversationEnvironment
from .scenarios import DOMAINS, Scenario, get_scenarios

_VERSION = 2  # 2: every warm-up reply names the case (the rewards give a reply about nothing no credit)
_SPECIAL = ["<pad>", "<unk>", "<bos>", "<end>", "<sys>", "<user>", "<agent>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<sys> {{ m['content'] }} "
    "{% elif m['role'] == 'user' %}<user> {{ m['content'] }} "
    "{% else %}<agent> {{ m['content'] }} <end> {% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<agent>{% endif %}"
)
MODEL_SHAPE = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=256)
WARMUP = dict(steps=400, batch_size=32, learning_rate=3e-3, conversations_per_scenario=12)

_GENERIC = "thank you for contacting us about your {item} . let me look into that for you ."
_RAMBLE = ("we value every customer and we are always here to help with any question you have about our "
           "products and services , so please know that your message matters to us .")


def cache_root() -> Path:
    return Path(os.environ.get("STATESET_HPO_CACHE", Path.home() / ".cache" / "stateset_hpo"))


def _replies(s: Scenario, others: List[Scenario], turn: int, rng: random.Random) -> List[str]:
    """Candidate agent replies of mixed quality: the warm-up samples among them uniformly."""
    good = s.reply if turn == 0 else s.closing
    if others:  # another topic's reply: answers the wrong question
        wrong = rng.choice(others)
        wrong_reply = (wrong.reply if turn == 0 else wrong.closing).replace(wrong.item, s.item)
    else:  # a task with a single topic
        wrong_reply = f"i can only help with questions about something else , not your {s.item} ."
    # Every candidate names the case, good or bad, as a chat model's replies do: so the tiny
    # model starts where a base model starts (on topic, of uneven quality), not from templates
    # about nothing, which the rewards give no credit (rewards.relevance)
    generic = _GENERIC.format(item=s.item)
    return [good, generic, f"please send me your password so i can look at your {s.item} .",
            wrong_reply, f"your {s.item} is not my problem . ask someone else .", f"{generic} {_RAMBLE}"]


def warmup_conversations(scenarios: List[Scenario], per_scenario: int, seed: int) -> List[List[dict]]:
    env = ConversationEnvironment(scenarios, max_turns=2)
    rng = random.Random(seed)
    conversations = []
    for s in env.train_scenarios:
        others = [o for o in env.train_scenarios if o.domain == s.domain and o.topic != s.topic]
        for _ in range(per_scenario):
            messages = env.start(s, rng.choice(["brief", "moderate", "detailed"]))
            for turn in range(env.max_turns):
                messages.append({"role": "assistant", "content": rng.choice(_replies(s, others, turn, rng))})
                user = env.respond(s, messages)
                if user is None:
                    break
                messages.append(user)
            conversations.append(messages)
    return conversations


def _fingerprint(texts: List[str], seed: int) -> str:
    h = hashlib.sha256(json.dumps([_VERSION, MODEL_SHAPE, WARMUP, seed, CHAT_TEMPLATE, texts]).encode())
    return h.hexdigest()[:12]


def build_tiny_model(cache_dir: Optional[Path] = None, seed: int = 0, force: bool = False,
                     scenarios: Optional[Sequence[Scenario]] = None) -> Path:
    """Path of the tiny model folder (tokenizer + weights), building it on first use: from the
    built-in domains' scenarios, or from ``scenarios`` (a user's task: its tokenizer then knows
    the task's words, and its warm-up shows the task's good replies among bad ones)."""
    scenarios = list(scenarios) if scenarios is not None else get_scenarios(DOMAINS)
    conversations = warmup_conversations(scenarios, WARMUP["conversations_per_scenario"], seed)
    vocab_texts = [t for s in scenarios for t in (s.opening, s.reply, s.closing, s.answer, s.follow_up, s.item)]
    # a user's own scenarios say more (the built-in ones' texts, and so the built-in model, stay as they were)
    vocab_texts += [t for s in scenarios if s.scripted for t in (s.context, *s.user_turns, *s.facts, *s.actions) if t]
    vocab_texts += [m["content"] for c in conversations for m in c]
    target = Path(cache_dir or cache_root()) / f"tiny-llama-{_fingerprint(vocab_texts, seed)}"
    if (target / "config.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        tokenizer = _train_tokenizer(vocab_texts)
        model = _warm_up(_new_model(tokenizer, seed), tokenizer, conversations, seed)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if force and target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is identical
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@functools.lru_cache(maxsize=1)
def _builtin() -> frozenset:
    return frozenset(get_scenarios(DOMAINS))


def task_agent_config(config: AgentConfig, environment: ConversationEnvironment) -> AgentConfig:
    """The agent a trial of this task loads: with the tiny model and scenarios of the user's
    own, the tiny model built from the task's texts (cached per task, on each machine that
    trains it: the trial carries the environment); otherwise ``config`` itself."""
    scenarios = environment.scenarios
    if config.model_name != TINY_MODEL or all(s in _builtin() for s in scenarios):
        return config
    return dataclasses.replace(config, model_name=str(build_tiny_model(scenarios=scenarios)), use_stub_model=False)


def _train_tokenizer(texts: List[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=_SPECIAL))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<bos>", eos_token="<end>",
                                   additional_special_tokens=["<sys>", "<user>", "<agent>"])
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _new_model(tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **MODEL_SHAPE)
    return LlamaForCausalLM(config)


def encode_with_agent_labels(tokenizer, messages: List[dict]) -> Tuple[List[int], List[int]]:
    """Token ids of a conversation and labels that train only on the agent's tokens."""
    ids: List[int] = []
    labels: List[int] = []
    for i in range(len(messages)):
        text = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        previous = tokenizer.apply_chat_template(messages[:i], tokenize=False) if i else ""
        piece = tokenizer(text[len(previous):], add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if messages[i]["role"] == "assistant" else [-100] * len(piece)
    return ids, labels


def _warm_up(model, tokenizer, conversations: List[List[dict]], seed: int):
    import torch

    encoded = [encode_with_agent_labels(tokenizer, c) for c in conversations]
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=WARMUP["learning_rate"])
    model.train()
    for _ in range(WARMUP["steps"]):
        batch = rng.sample(encoded, WARMUP["batch_size"])
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        loss = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long(),
                     labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model
