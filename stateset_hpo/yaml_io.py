"""YAML as users write it: ``1e-5`` is a number.

PyYAML follows YAML 1.1, whose float pattern needs a dot (``1.0e-5``), so the way everyone
writes a learning rate (``1e-5``, ``3E-4``) would load as the string "1e-5" and fail as "not a
number". This loader adds YAML 1.2's exponent-without-dot floats; everything else is PyYAML's
safe loader. Used for ``--config``, ``--set`` values and space files.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
