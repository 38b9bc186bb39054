"""A user's own scenarios, in the forms they already have: dicts in the guide's shape, JSONL,
JSON or YAML files, or a Hugging Face ``datasets.Dataset`` with those columns.

One scenario is a mapping (the replaced system's shape, plus what the rewards check):

- ``id`` (required): a unique name, used in every error about it;
- ``topic`` (required): what the conversation is about, e.g. "order_status";
- ``user_goal`` (required): what the user wants; also the user's opening message unless
  ``opening`` is given;
- ``user_responses`` (required, may be empty): the user's scripted turns after the opening,
  played in order, one after each agent reply; the conversation ends when they run out (or at
  the environment's ``max_turns``);
- ``context`` (optional): what the agent knows about the case, a string or a mapping
  (``{"order": "1234", "status": "shipped"}`` reads "order: 1234 ; status: shipped"); shown in
  the agent's system message;
- ``facts``, ``expected_actions``, ``forbidden`` (optional lists of strings): reference facts a
  correct reply states, actions it offers, content that makes it unsafe (checked with the
  built-in unsafe phrases); the built-in rewards read them;
- ``reference_reply`` (optional): a good first reply (the tiny local model's warm-up shows it
  among bad ones; made from the facts and actions when absent);
- ``item`` (optional): the thing the user asks about, which a helpful reply names (default:
  the topic's words);
- ``split`` (optional): train, selection or test; unmarked scenarios are split by
  `ConversationEnvironment` (see there);
- ``domain`` (optional): the agent's role, "you are a <domain> agent" (default: the
  ``domain`` argument of `load_scenarios`).

Unknown keys are refused (a misspelt ``expected_action`` would otherwise be dropped silently).
A Hugging Face dataset's ``None`` in an optional column counts as absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import yaml

from ..yaml_io import load_yaml
from .scenarios import SPLITS, UNSAFE_PHRASES, Scenario, with_wrong_facts

REQUIRED = ("id", "topic", "user_goal", "user_responses")
OPTIONAL = ("context", "opening", "facts", "expected_actions", "forbidden", "reference_reply", "item", "split",
            "domain")
FILE_SUFFIXES = (".jsonl", ".json", ".yaml", ".yml")


def load_scenarios(source: Any, domain: str = "custom") -> List[Scenario]:
    """Scenarios from a list of mappings, a file (.jsonl, .json, .yaml, .yml) or a
    ``datasets.Dataset``; ValueError naming the scenario and field that is wrong."""
    if not isinstance(domain, str) or not domain.strip():
        raise ValueError(f"domain must be a non-empty string, got {domain!r}")
    scenarios = [scenario_from_dict(row, where, domain) for where, row in _rows(source)]
    if not scenarios:
        raise ValueError(f"no scenarios in {_name(source)}")
    seen = set()
    for s in scenarios:
        if s.id in seen:
            raise ValueError(f"scenario id {s.id!r} appears twice in {_name(source)}: ids must be unique")
        seen.add(s.id)
    return with_wrong_facts(scenarios)


def looks_like_file(text: str) -> bool:
    return text.lower().endswith(FILE_SUFFIXES)


def scenario_from_dict(row: Any, where: str = "scenario", domain: str = "custom") -> Scenario:
    """One scenario from a mapping in the guide's shape (see the module docstring)."""
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: a scenario must be a mapping with {', '.join(REQUIRED)}, got {type(row).__name__}")
    row = {k: v for k, v in row.items() if not (v is None and k in OPTIONAL)}
    label = f"{where} ({str(row['id'])!r})" if isinstance(row.get("id"), (str, int)) else where
    unknown = sorted(str(k) for k in row if k not in REQUIRED + OPTIONAL)
    if unknown:
        raise ValueError(f"{label}: unknown fields {unknown}; valid fields: {', '.join(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ValueError(f"{label}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")

    def text(key: str, default: str = "") -> str:
        value = row.get(key, default)
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):  # numeric ids are common
            value = str(value)
        if not isinstance(value, str) or (key in REQUIRED and not value.strip()):
            raise ValueError(f"{label}: field {key!r} must be a non-empty string, got {value!r}")
        return value.strip()

    def texts(key: str) -> Tuple[str, ...]:
        value = row.get(key, ())
        if isinstance(value, str) or not isinstance(value, Sequence) or \
                not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError(f"{label}: field {key!r} must be a list of non-empty strings, got {value!r}")
        return tuple(v.strip() for v in value)

    split = text("split", "train")
    if split not in SPLITS:
        raise ValueError(f"{label}: field 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    topic, turns = text("topic"), texts("user_responses")
    facts, actions = texts("facts"), texts("expected_actions")
    item = text("item", "") or topic.replace("_", " ")
    reply = text("reference_reply", "") or _made_reply(item, facts, actions)
    return Scenario(id=text("id"), domain=text("domain", domain), topic=topic, item=item,
                    opening=text("opening", "") or text("user_goal"), facts=facts, actions=actions,
                    forbidden=texts("forbidden") + UNSAFE_PHRASES, reply=reply,
                    answer=turns[0] if turns else "", follow_up=turns[1] if len(turns) > 1 else "",
                    closing=reply, split=split, context=_context(row.get("context", ""), label), user_turns=turns,
                    scripted=True)


def _context(value: Any, label: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping) and all(isinstance(v, (str, int, float)) for v in value.values()):
        return " ; ".join(f"{k}: {v}" for k, v in value.items())
    raise ValueError(f"{label}: field 'context' must be a string or a mapping of names to values, got {value!r}")


def _made_reply(item: str, facts: Tuple[str, ...], actions: Tuple[str, ...]) -> str:
    """A good first reply when the scenario gives none: names the item, states the facts,
    offers the actions and asks the user something (what the built-in rewards look for)."""
    parts = [f"i can help with your {item} ."] + [f"{f} ." for f in facts]
    if actions:
        parts.append(f"i will {' and '.join(actions)} .")
    return " ".join(parts + ["is there anything else you need ?"])


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def _rows(source: Any) -> Iterator[Tuple[str, Any]]:
    """(where, row) for each scenario of the source."""
    if isinstance(source, (str, Path)):
        yield from _file_rows(Path(source).expanduser())
    elif hasattr(source, "column_names") and hasattr(source, "__iter__"):  # a datasets.Dataset
        for i, row in enumerate(source):
            yield f"dataset row {i}", row
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        for i, row in enumerate(source):
            yield f"scenario {i}", row
    else:
        raise ValueError(f"scenarios must be a list of mappings, a file ({', '.join(FILE_SUFFIXES)}) or a "
                         f"datasets.Dataset, got {type(source).__name__}")


def _file_rows(path: Path) -> Iterator[Tuple[str, Any]]:
    if not looks_like_file(path.name):
        raise ValueError(f"scenario file {str(path)!r} must end with one of {', '.join(FILE_SUFFIXES)}")
    if not path.is_file():
        raise ValueError(f"scenario file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"scenario file {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield f"{path.name} line {number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
        return
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError) as exc:  # (json.JSONDecodeError is a ValueError)
        raise ValueError(f"{path.name}: cannot read it ({exc})") from None
    if isinstance(data, Mapping) and isinstance(data.get("scenarios"), list):
        data = data["scenarios"]
    if not isinstance(data, list):
        raise ValueError(f"{path.name} must hold a list of scenarios (or a mapping with a 'scenarios' list), "
                         f"got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path.name} scenario {i}", row
