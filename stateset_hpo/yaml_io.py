"""YAML as users write it: ``1e-5`` is a number.

PyYAML follows YAML 1.1, whose float pattern needs a dot (``1.0e-5``), so the way everyone
writes a learning rate (``1e-5``, ``3E-4``) would load as the string "1e-5" and fail as "not a
number". This loader adds YAML 1.2's exponent-without-dot floats; everything else is PyYAML's
safe loader, with two refusals it lacks: a key given twice in one mapping (PyYAML keeps the last
one silently, so a setting the user wrote would be dropped), and aliases that expand past
`MAX_VALUES` values (a few hundred bytes of nested aliases describe gigabytes, which every
message echoing the value would then print). Used for ``--config``, ``--set`` values, space
files and scenario files.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


MAX_VALUES = 100_000  # values a document may hold once its aliases are expanded


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.YAMLError(f"the key {str(key)[:80]!r} is given twice (line {key_node.start_mark.line + 1})")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _expanded_size(node, sizes) -> int:
    """How many values ``node`` holds with every alias expanded (shared nodes counted once per
    use; memoised, so a bomb is measured without being expanded)."""
    if id(node) not in sizes:
        sizes[id(node)] = 0  # (a recursive alias: counted as empty on its way round)
        if isinstance(node, yaml.MappingNode):
            inner = sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            inner = sum(_expanded_size(v, sizes) for v in node.value)
        else:
            inner = 0
        sizes[id(node)] = 1 + inner
    return sizes[id(node)]


def load_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise yaml.YAMLError("the document is nested too deeply") from None
        if node is None:
            return None
        try:
            size = _expanded_size(node, {})
        except RecursionError:
            raise yaml.YAMLError("the document is nested too deeply") from None
        if size > MAX_VALUES:
            raise yaml.YAMLError(f"the document expands to {size} values through its aliases (at most {MAX_VALUES})")
        return loader.construct_document(node)
    finally:
        loader.dispose()
