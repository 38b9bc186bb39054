"""Value checks shared by HPOConfig and TrainingConfig.

Each check returns the (normalised) value or raises ValueError with the reason; the caller
prefixes the field's name, so every config error reads "<Config>.<field> <reason>".
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, Dict, Mapping, Optional, Tuple


def one_of(options: Tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"unknown value {value!r}; valid values: {', '.join(options)}")
        return value
    return check


def integer(minimum: int, optional: bool = False, maximum: Optional[int] = None) -> Callable[[Any], Optional[int]]:
    def check(value: Any) -> Optional[int]:
        if value is None and optional:
            return None
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum or \
                (maximum is not None and value > maximum):
            between = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise ValueError(f"must be an integer {between}{' or None' if optional else ''}, got {value!r}")
        return int(value)
    return check


def number(minimum: float, strict: bool, optional: bool = False,
            maximum: Optional[float] = None) -> Callable[[Any], Optional[float]]:
    def check(value: Any) -> Optional[float]:
        if value is None and optional:
            return None
        try:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            ok = False
        ok = ok and (value > minimum if strict else value >= minimum)
        ok = ok and (maximum is None or value <= maximum)
        if not ok:
            bound = f" {'>' if strict else '>='} {minimum}" if minimum > -math.inf else ""
            bound += f" and <= {maximum}" if maximum is not None else ""
            raise ValueError(f"must be a {'finite ' if not bound else ''}number{bound}{' or None' if optional else ''}, "
                             f"got {str(value)[:80]!r}")
        return float(value)
    return check


def optional_str(value: Any) -> Optional[str]:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"must be a non-empty string or None, got {value!r}")
    return value


def path_or_uri(value: Any) -> Optional[str]:
    """A local path or a URI; ``s3:/bucket`` (a scheme with one slash) is a mistyped URI, not a
    folder named "s3:" to create quietly."""
    value = optional_str(value)
    if value is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/(?!/)", value):
        scheme, rest = value.split(":", 1)
        path = rest.lstrip("/")
        from .masking import masked

        shown, path = masked(value), masked(f"{scheme}://{path}").split("://", 1)[1]  # (no password echoed)
        if scheme.lower().startswith("sqlite"):  # SQLAlchemy's form: three slashes, then the file's path
            raise ValueError(f"{shown!r} looks like a database URL missing slashes; write {scheme}:///{path} "
                             f"(the file {path} here) or {scheme}:////{path} (the file /{path})")
        raise ValueError(f"{shown!r} looks like a URI missing a slash; write {scheme}://{path}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, got {value!r}")
    return value


def check_section(section: str, values: Any, spec: Dict[str, Tuple[Any, Callable[[Any], Any]]],
                  fill_defaults: bool = True) -> Dict[str, Any]:
    """A settings mapping checked key by key against ``spec`` ({key: (default, check)}), with
    the defaults of the keys left out unless ``fill_defaults`` is False; an unknown key is an
    error that lists the valid ones."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{section} must be a mapping, got {type(values).__name__}")
    unknown = sorted(k for k in values if k not in spec)
    if unknown:
        raise ValueError(f"{section}: unknown keys {unknown}; valid keys: {', '.join(spec)}")
    out = {k: default for k, (default, _) in spec.items()} if fill_defaults else {}
    for key, value in values.items():
        try:
            out[key] = spec[key][1](value)
        except ValueError as exc:
            raise ValueError(f"{section}[{key!r}] {exc}") from None
    return out
