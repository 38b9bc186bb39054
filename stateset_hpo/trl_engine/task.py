"""`TRLTask`: a user's task for trials on TRL's `GRPOTrainer`, in the forms TRL users have.

Prompts come as a `datasets.Dataset` (or a `DatasetDict` with train / validation / test), a
Hub dataset name (``org/name``, loaded with `datasets.load_dataset`), a JSONL file, a folder
written by `Dataset.save_to_disk`, a list of rows, or the guide's scenarios (a `ConversationEnvironment`); each row
has a ``prompt`` (text, or a list of {"role", "content"} messages) and any other columns the
reward functions read. The reward is TRL's convention: ``fn(prompts, completions, **kwargs)``
returning one score (or None) per completion, several summed with ``reward_weights``.

The rows are split once, by a fixed rule, into train, selection (the held-out score every
trial is judged on) and test (touched only by validation): a ``split`` column says where each
row goes (train / selection or validation / test); without one, 15% go to selection and 15% to
test by a fixed shuffle (seed 0, whatever the trial's seed), so the yardstick never moves with
the hyperparameters.

Multi-turn: the guide's scenarios train single-turn on TRL (each scenario's opening and the
agent's first reply, scored by the scenario's reward). TRL's multi-turn path
(``environment_factory``) drives tool calls, not a simulated customer's replies, so a
conversation environment does not map onto it; tune multi-turn agents with our engine.
"""

from __future__ import annotations

import inspect
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..grpo.rewards import ReplyContext, checked_scores

SPLIT_NAMES = {"train": "train", "selection": "selection", "validation": "selection", "test": "test"}
HELD_OUT = 0.15  # of the rows, each for selection and test, when the data names no split


def default_peft_config():
    """The adapter our engine trains by default (TrainingConfig's LoRA settings), for a like-for-like start."""
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


@dataclass
class TRLTask:
    """Prompts split three ways, TRL reward functions, and the adapter TRL trains.

    ``peft_config``: passed to `GRPOTrainer` (None trains every weight, as TRL does without one);
    by default our engine's LoRA adapter."""

    train: List[Dict[str, Any]]
    selection: List[Dict[str, Any]]
    test: List[Dict[str, Any]]
    reward_funcs: List[Callable[..., Sequence[Optional[float]]]]
    peft_config: Any = field(default_factory=default_peft_config)
    name: str = "dataset"

    def __post_init__(self) -> None:
        if not isinstance(self.reward_funcs, (list, tuple)):
            self.reward_funcs = [self.reward_funcs]
        if not self.reward_funcs:
            raise ValueError("a TRL task needs at least one reward function")
        for split, rows in (("train", self.train), ("selection", self.selection), ("test", self.test)):
            if not rows:
                raise ValueError(f"the {split} split of the TRL task has no rows")
            for i, row in enumerate(rows):
                prompt = row.get("prompt") if isinstance(row, dict) else None
                if not (isinstance(prompt, str) and prompt.strip()) and not _is_conversation(prompt):
                    raise ValueError(f"{split} row {i}: every row needs a 'prompt' (text, or a list of "
                                     f"{{'role', 'content'}} messages), got {str(row)[:120]!r}")
        for fn in self.reward_funcs:
            check_reward_function(fn, self.train[0])

    @property
    def reward_names(self) -> List[str]:
        return [reward_name(fn) for fn in self.reward_funcs]

    @property
    def test_topics(self) -> Optional[List[str]]:
        """The test rows' ``topic`` column, where every row has one (validation's clusters)."""
        topics = [row.get("topic") for row in self.test]
        return [str(t) for t in topics] if all(t is not None for t in topics) else None

    # -- the forms users have -----------------------------------------------------------------
    @classmethod
    def from_dataset(cls, data: Any, reward_funcs: Any, **kwargs: Any) -> "TRLTask":
        """From a `Dataset`, a `DatasetDict`, a list of rows, or a path (a ``.jsonl`` file, or a
        folder written by `Dataset.save_to_disk`)."""
        name = kwargs.pop("name", None)
        splits = load_splits(data)
        return cls(**splits, reward_funcs=reward_funcs, name=name or _name_of(data), **kwargs)

    @classmethod
    def from_environment(cls, environment: Any, reward: Any, **kwargs: Any) -> "TRLTask":
        """The guide's scenarios, single-turn: each scenario's opening conversation is a prompt
        and the task's composite reward (its declared weights) scores the first reply."""
        by_split = {split: [{"prompt": environment.start(s), "scenario_id": s.id, "topic": s.topic}
                            for s in getattr(environment, f"{split}_scenarios")]
                    for split in ("train", "selection", "test")}
        scenarios = {s.id: s for s in environment.scenarios}

        def composite_reward(prompts, completions, scenario_id, **_):
            contexts = [ReplyContext(scenarios[sid], tuple(prompt), _text(completion))
                        for prompt, completion, sid in zip(prompts, completions, scenario_id)]
            return [reward.combine(scores) for scores in reward.scores_batch(contexts)]

        return cls(**by_split, reward_funcs=[composite_reward], name=kwargs.pop("name", "scenarios"), **kwargs)


def _is_conversation(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)


def _text(completion: Any) -> str:
    return completion[0]["content"] if isinstance(completion, list) else completion


def _name_of(data: Any) -> str:
    return Path(data).name if isinstance(data, (str, Path)) else "dataset"


def reward_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def load_splits(data: Any) -> Dict[str, List[Dict[str, Any]]]:
    """{train, selection, test} rows of ``data`` (see the module docstring for the rule)."""
    if isinstance(data, str) and _looks_like_hub_name(data):
        data = _load_hub_dataset(data)
    elif isinstance(data, (str, Path)):
        data = _read_path(Path(data).expanduser())
    if hasattr(data, "keys") and hasattr(data, "values") and not isinstance(data, dict):  # a DatasetDict
        named = {SPLIT_NAMES.get(k): [dict(r) for r in v] for k, v in data.items() if k in SPLIT_NAMES}
        if "train" not in named:
            raise ValueError(f"a DatasetDict needs a 'train' split; it has {', '.join(data.keys())}")
        rows = named.pop("train")
        if {"selection", "test"} <= set(named):
            return {"train": rows, **named}
        return _split_rows([{**r, "split": r.get("split", "train")} for r in rows]
                           + [{**r, "split": k} for k, v in named.items() for r in v])
    rows = [dict(r) for r in data]
    return _split_rows(rows)


def _looks_like_hub_name(text: str) -> bool:
    """``org/name`` that is no local path: a dataset on the Hugging Face Hub."""
    return not Path(text).expanduser().exists() and not text.startswith((".", "/", "~")) and \
        text.count("/") == 1 and not Path(text).suffix


def _load_hub_dataset(name: str) -> Any:
    from datasets import load_dataset

    try:
        return load_dataset(name)
    except Exception as exc:  # (no network, no such dataset, a gated one: datasets raises many kinds)
        raise ValueError(f"dataset {name!r}: cannot load it from the Hugging Face Hub ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})"[:400]) from None


def _read_path(path: Path) -> Any:
    if path.is_dir():
        from datasets import load_from_disk

        try:
            return load_from_disk(str(path))
        except Exception as exc:  # (datasets raises FileNotFoundError or its own errors for a foreign folder)
            raise ValueError(f"dataset {str(path)!r}: not a folder written by Dataset.save_to_disk ({exc})"[:400]) \
                from None
    if not path.is_file():
        raise ValueError(f"dataset {str(path)!r}: no such file or folder")
    if path.suffix != ".jsonl":
        raise ValueError(f"dataset {str(path)!r}: a dataset file must be JSON Lines (.jsonl), one row per line")
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"dataset {str(path)!r} is not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"dataset {str(path)!r} line {number}: not JSON ({type(exc).__name__})") from None
        if not isinstance(row, dict):
            raise ValueError(f"dataset {str(path)!r} line {number}: each line must be a JSON object with a 'prompt'")
        rows.append(row)
    return rows


def _split_rows(rows: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    if any("split" in r for r in rows):
        out: Dict[str, List[Dict[str, Any]]] = {"train": [], "selection": [], "test": []}
        for i, row in enumerate(rows):
            split = SPLIT_NAMES.get(row.get("split", "train"))
            if split is None:
                raise ValueError(f"row {i}: split {row.get('split')!r} is none of {', '.join(SPLIT_NAMES)}")
            out[split].append({k: v for k, v in row.items() if k != "split"})
        return out
    if len(rows) < 5:
        raise ValueError(f"the dataset has {len(rows)} rows; at least 5 are needed to hold out selection and test "
                         "prompts (or give them with a 'split' column)")
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    held = max(1, round(HELD_OUT * len(rows)))
    return {"selection": [rows[i] for i in order[:held]], "test": [rows[i] for i in order[held:2 * held]],
            "train": [rows[i] for i in order[2 * held:]]}


def check_reward_function(fn: Any, row: Dict[str, Any]) -> None:
    """A TRL reward function is called as TRL calls it (keywords ``prompts``, ``completions``,
    ``completion_ids``, ``trainer_state`` at step 0, the row's columns) on an empty completion of
    ``row``: a wrong signature
    or return value fails here, naming the function, not hours later in a trial."""
    name = reward_name(fn)
    if not callable(fn):
        raise ValueError(f"reward function {fn!r} is not callable")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = signature.parameters.values()
        keywords = any(p.kind is p.VAR_KEYWORD for p in params)
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        missing = [n for n in ("prompts", "completions") if n not in named and not keywords]
        if missing or not keywords:
            raise ValueError(f"reward function {name!r} must take TRL's arguments: fn(prompts, completions, **kwargs) "
                             f"(it is also passed completion_ids, trainer_state and the dataset's columns); its "
                             f"signature is {name}{signature}")
    prompt = row["prompt"]
    completion = [{"role": "assistant", "content": ""}] if _is_conversation(prompt) else ""
    columns = {k: [v] for k, v in row.items() if k not in ("prompt", "completion", "completion_ids")}
    from transformers import TrainerState

    try:
        out = fn(prompts=[prompt], completions=[completion], completion_ids=[[]], trainer_state=TrainerState(),
                 **columns)
    except (Exception, SystemExit) as exc:
        raise ValueError(f"reward function {name!r} failed on an empty completion of the first training row: "
                         f"{type(exc).__name__}: {exc}"[:400]) from None
    checked_scores(name, out, 1)
