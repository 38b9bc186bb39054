"""One tunable hyperparameter: its kind, its range or choices, and its default.

A `SearchDimension` is validated when it is built, so a bad range fails at the line
that declares it, naming the dimension, instead of deep inside a backend later.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Optional, Sequence, Tuple


class SearchSpaceType(str, Enum):
    """How a dimension is sampled. FLOAT is an alias of UNIFORM (the seed API has both)."""

    UNIFORM = "uniform"
    FLOAT = "uniform"
    LOGUNIFORM = "loguniform"
    INT = "int"
    CATEGORICAL = "categorical"
    CHOICE = "choice"

    @classmethod
    def parse(cls, value: Any) -> "SearchSpaceType":
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            aliases = {"float": "uniform", "log_uniform": "loguniform", "integer": "int"}
            key = aliases.get(key, key)
            for member in cls:
                if member.value == key:
                    return member
        valid = sorted({m.value for m in cls} | {"float"})
        raise ValueError(f"unknown search space type {value!r}; valid types: {', '.join(valid)}")


RANGE_TYPES = (SearchSpaceType.UNIFORM, SearchSpaceType.LOGUNIFORM, SearchSpaceType.INT)
CHOICE_TYPES = (SearchSpaceType.CATEGORICAL, SearchSpaceType.CHOICE)
_SCALAR_TYPES = (str, bool, int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integral(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _choice_key(value: Any) -> Tuple[bool, Any]:
    # True == 1 in Python; keep them distinct, but treat 1 and 1.0 as the same choice.
    return (isinstance(value, bool), value)


class Choices(tuple):
    """A dimension's choices: immutable, and equal to the same values as a list or a tuple
    (the replaced system kept a list: ``dim.choices == [8, 16]`` keeps working)."""

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (list, tuple)) else NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__


@dataclass(frozen=True)
class SearchDimension:
    """A named hyperparameter with a range (uniform, loguniform, int) or choices.

    ``log`` applies to INT dimensions (LOGUNIFORM is log by definition). ``default`` is the
    value used for the baseline trial; when omitted, `baseline_value` is the range's centre
    (geometric centre on a log scale) or the first choice.

    ``when`` makes the dimension conditional: ``{"use_lora": True}`` or ``{"num_iterations":
    [2, 4]}`` (one value or a list, per parent) means it is searched only in trials whose
    parents take one of those values, and is absent from the others' parameters (the training
    configuration's own value applies there). Parents are choice dimensions declared earlier in
    the same space (SearchSpace checks that); several parents must all match.
    """

    name: str
    type: SearchSpaceType
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Optional[Sequence[Any]] = None
    default: Any = None
    log: bool = False
    description: str = ""
    when: Optional[Mapping[str, Any]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"search dimension name must be a non-empty string, got {self.name!r}")
        try:
            kind = SearchSpaceType.parse(self.type)
        except ValueError as exc:
            raise ValueError(f"dimension {self.name!r}: {exc}") from None
        object.__setattr__(self, "type", kind)
        if not isinstance(self.log, bool):
            self._fail(f"log must be True or False, got {self.log!r}")
        if kind in RANGE_TYPES:
            self._validate_range(kind)
        else:
            self._validate_choices(kind)
        self._validate_when()

    # -- validation -------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        raise ValueError(f"dimension {self.name!r}: {message}")

    def _validate_range(self, kind: SearchSpaceType) -> None:
        if self.choices is not None:
            self._fail(f"{kind.value} dimensions take low/high, not choices")
        if self.log and kind is not SearchSpaceType.INT:
            self._fail("log=True applies to int dimensions; use LOGUNIFORM for a log-scaled float")
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is None:
                self._fail(f"{kind.value} dimensions need both low and high ({bound} is missing)")
            if not _is_number(value):
                self._fail(f"{bound} must be a number, got {value!r} ({type(value).__name__})")
            if abs(value) > 1e300 or not math.isfinite(value):  # (an int too large for a float fails isfinite)
                self._fail(f"{bound} must be finite (and at most 1e300 in size), got {str(value)[:40]!r}")
            if kind is SearchSpaceType.INT and not _is_integral(value):
                self._fail(f"int dimensions need integer bounds, got {bound}={value!r}")
        if self.low >= self.high:
            self._fail(f"low must be below high, got low={self.low!r} high={self.high!r}")
        if self.is_log and self.low <= 0:
            self._fail(f"a log-scaled dimension needs low > 0, got low={self.low!r}")
        cast = int if kind is SearchSpaceType.INT else float
        object.__setattr__(self, "low", cast(self.low))
        object.__setattr__(self, "high", cast(self.high))
        if self.default is not None:
            if not _is_number(self.default) or (cast is int and not _is_integral(self.default)):
                self._fail(f"default must be {'an integer' if cast is int else 'a number'}, got {self.default!r}")
            if not self.low <= self.default <= self.high:
                self._fail(f"default {self.default!r} is outside [{self.low!r}, {self.high!r}]")
            object.__setattr__(self, "default", cast(self.default))

    def _validate_choices(self, kind: SearchSpaceType) -> None:
        if self.low is not None or self.high is not None:
            self._fail(f"{kind.value} dimensions take choices, not low/high")
        if self.choices is None or isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            self._fail(f"{kind.value} dimensions need a list of choices, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            self._fail("choices must not be empty")
        for choice in choices:
            if kind is SearchSpaceType.CHOICE and not _is_number(choice):
                self._fail(f"choice dimensions hold numbers only, got {choice!r}; use CATEGORICAL")
            if not isinstance(choice, _SCALAR_TYPES):
                self._fail(f"choices must be strings, numbers or booleans, got {choice!r}")
            if isinstance(choice, float) and not math.isfinite(choice):
                self._fail(f"choices must be finite, got {choice!r}")
        keys = [_choice_key(c) for c in choices]
        duplicates = sorted({repr(c) for c, k in zip(choices, keys) if keys.count(k) > 1})
        if duplicates:
            self._fail(f"duplicate choices: {', '.join(duplicates)}")
        object.__setattr__(self, "choices", Choices(choices))
        if self.default is not None and _choice_key(self.default) not in keys:
            self._fail(f"default {self.default!r} is not one of the choices {list(choices)!r}")

    def _validate_when(self) -> None:
        """``when`` becomes a tuple of (parent, Choices): hashable and order-stable."""
        if self.when is None:
            return
        if not isinstance(self.when, Mapping) or not self.when:
            self._fail(f"when must be a non-empty mapping such as {{'use_lora': True}}, got {self.when!r}")
        conditions = []
        for parent, values in self.when.items():
            if not isinstance(parent, str) or not parent.strip():
                self._fail(f"when: a parent must be a dimension name, got {parent!r}")
            if parent == self.name:
                self._fail("when: a dimension cannot depend on itself")
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if not values or not all(isinstance(v, _SCALAR_TYPES) for v in values):
                self._fail(f"when[{parent!r}] must be a value or a non-empty list of values, got {values!r}")
            conditions.append((parent, Choices(values)))
        object.__setattr__(self, "when", tuple(conditions))

    # -- queries ----------------------------------------------------------------------
    def active_given(self, params: Mapping[str, Any]) -> bool:
        """Whether this dimension is searched at a point whose parents take ``params``' values."""
        return all(parent in params and any(_choice_key(params[parent]) == _choice_key(v) for v in values)
                   for parent, values in self.when or ())

    @property
    def is_log(self) -> bool:
        return self.type is SearchSpaceType.LOGUNIFORM or (self.type is SearchSpaceType.INT and self.log)

    @property
    def is_range(self) -> bool:
        return self.type in RANGE_TYPES

    @property
    def baseline_value(self) -> Any:
        """The declared default, else the centre of the range or the first choice."""
        if self.default is not None:
            return self.default
        if not self.is_range:
            return self.choices[0]
        centre = math.sqrt(self.low * self.high) if self.is_log else (self.low + self.high) / 2
        return int(round(centre)) if self.type is SearchSpaceType.INT else centre

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a legal sample of this dimension (right type, in range)."""
        if self.is_range:
            if not _is_number(value) or not self.low <= value <= self.high:
                return False
            return self.type is not SearchSpaceType.INT or _is_integral(value)
        return any(_choice_key(value) == _choice_key(c) for c in self.choices)

    def choice_index(self, value: Any) -> int:
        """Position of ``value`` among the choices (True and 1 are different choices)."""
        for i, choice in enumerate(self.choices or ()):
            if _choice_key(value) == _choice_key(choice):
                return i
        raise ValueError(f"dimension {self.name!r}: {value!r} is not one of {list(self.choices or ())!r}")

    def grid_values(self, points: int) -> list:
        """Values for a grid search: every choice, or ``points`` spread over the range."""
        if not self.is_range:
            return list(self.choices)
        if not _is_integral(points) or points < 2:
            raise ValueError(f"dimension {self.name!r}: grid points must be an integer >= 2, got {points!r}")
        if self.is_log:
            lo, hi = math.log(self.low), math.log(self.high)
            values = [math.exp(lo + (hi - lo) * i / (points - 1)) for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        values[0], values[-1] = self.low, self.high  # exact ends despite rounding
        if self.type is SearchSpaceType.INT:
            return sorted({min(self.high, max(self.low, int(round(v)))) for v in values})
        return values

    # -- derived dimensions -----------------------------------------------------------
    def narrowed(self, low: Any = None, high: Any = None, choices: Optional[Sequence[Any]] = None,
                 default: Any = None) -> "SearchDimension":
        """A copy restricted to a sub-range or a subset of the choices (never wider)."""
        if self.is_range:
            if choices is not None:
                self._fail("narrow a range dimension with low/high, not choices")
            new_low = self.low if low is None else low
            new_high = self.high if high is None else high
            for value in (new_low, new_high):
                if _is_number(value) and not self.low <= value <= self.high:
                    self._fail(f"narrowing must stay inside [{self.low!r}, {self.high!r}], got {value!r}")
            fields = dict(low=new_low, high=new_high, choices=None)
        else:
            if low is not None or high is not None:
                self._fail("narrow a choice dimension with choices, not low/high")
            if choices is None:
                self._fail("narrowing a choice dimension needs choices")
            unknown = [c for c in choices if not self.contains(c)]
            if unknown:
                self._fail(f"narrowed choices {unknown!r} are not among {list(self.choices)!r}")
            fields = dict(low=None, high=None, choices=list(choices))
        if default is None and self.default is not None:
            candidate = SearchDimension(self.name, self.type, log=self.log, **fields)
            default = self.default if candidate.contains(self.default) else None
        return SearchDimension(self.name, self.type, default=default, log=self.log,
                               description=self.description, when=self.when_dict(), **fields)

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        data: dict = {"name": self.name, "type": self.type.value}
        if self.is_range:
            data.update(low=self.low, high=self.high)
        else:
            data["choices"] = list(self.choices)
        if self.default is not None:
            data["default"] = self.default
        if self.log and self.type is SearchSpaceType.INT:
            data["log"] = True
        if self.description:
            data["description"] = self.description
        if self.when:
            data["when"] = self.when_dict()
        return data

    def when_dict(self) -> Optional[dict]:
        """``when`` as the user writes it: {parent: [values]}."""
        return {parent: list(values) for parent, values in self.when} if self.when else None

    @classmethod
    def from_dict(cls, data: Any) -> "SearchDimension":
        if not isinstance(data, dict):
            raise ValueError(f"a search dimension must be a mapping, got {data!r}")
        allowed = {"name", "type", "low", "high", "choices", "default", "log", "description", "when"}
        unknown = sorted(set(data) - allowed)
        name = data.get("name", "<unnamed>")
        # 'prior' (asked for: issue 33) is decided against until a sampler here can use one: Optuna's
        # samplers, HyperOpt and W&B take no centre within bounds, and the one bounded prior a searcher
        # here could read (ConfigSpace 1.2's normal float on a log scale, for BOHB) does not follow its
        # sigma (measured 2026-12-07: sigma 0.5 and 2.0 draw the same spread, 1.0 one point, 1e-3 a
        # near log-uniform one)
        if "prior" in unknown:
            raise ValueError(f"dimension {name!r}: 'prior' is not supported: none of the samplers here (Optuna's, "
                             "Ray Tune's searchers, W&B's) takes a prior centre; give the recommended value as the "
                             "dimension's default (the baseline trial runs it first) and narrow the range around it")
        if unknown:
            raise ValueError(f"dimension {name!r}: unknown keys {unknown}; valid keys: {sorted(allowed)}")
        if "type" not in data:
            raise ValueError(f"dimension {name!r}: missing 'type'")
        return cls(**data)
