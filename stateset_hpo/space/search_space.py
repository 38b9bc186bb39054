"""A set of named dimensions: composition, checks and serialisation.

The space is the single description of what a study tunes. Backends never see our types:
each compiles the space to the form it understands in its own package (search/ray/space.py
``to_tune`` / ``to_hyperopt``, search/ray/bayesopt.py, search/optuna/space.py ``to_optuna``,
search/wandb/space.py ``to_wandb``), as Ray's searchers own ``convert_search_space``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from .dimension import SearchDimension


class SearchSpace:
    """An ordered, immutable collection of uniquely named `SearchDimension`s."""

    def __init__(self, dimensions: Iterable[SearchDimension] = ()) -> None:
        dims: Dict[str, SearchDimension] = {}
        for dim in dimensions:
            if not isinstance(dim, SearchDimension):
                raise ValueError(f"a SearchSpace holds SearchDimension objects, got {dim!r}")
            if dim.name in dims:
                raise ValueError(f"duplicate dimension name {dim.name!r} in search space")
            _check_parents(dim, dims)
            dims[dim.name] = dim
        self._dims = dims

    # -- container protocol ---------------------------------------------------------------
    @property
    def dimensions(self) -> List[SearchDimension]:
        return list(self._dims.values())

    @property
    def names(self) -> List[str]:
        return list(self._dims)

    def __iter__(self) -> Iterator[SearchDimension]:
        return iter(self._dims.values())

    def __len__(self) -> int:
        return len(self._dims)

    def __contains__(self, name: object) -> bool:
        return name in self._dims

    def __getitem__(self, name: str) -> SearchDimension:
        try:
            return self._dims[name]
        except KeyError:
            raise KeyError(f"no dimension {name!r} in search space; dimensions: {', '.join(self._dims)}") from None

    def get_dimension(self, name: str) -> SearchDimension:
        """``space[name]`` (the replaced system's name for it)."""
        return self[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.dimensions == other.dimensions

    @property
    def conditional(self) -> bool:
        """Whether some dimension is searched only when others take given values (``when``)."""
        return any(d.when for d in self)

    def __repr__(self) -> str:
        return f"SearchSpace({self.names})"

    # -- composition ----------------------------------------------------------------------
    def union(self, other: "SearchSpace", override: bool = False) -> "SearchSpace":
        """Both spaces' dimensions. A shared name is an error unless ``override``, in
        which case ``other``'s dimension replaces this one's (keeping its position)."""
        if not isinstance(other, SearchSpace):
            raise ValueError(f"can only combine a SearchSpace with another SearchSpace, got {other!r}")
        clash = [name for name in other.names if name in self._dims]
        if clash and not override:
            raise ValueError(f"search spaces both define {', '.join(clash)}; pass override=True to "
                             "let the second space's definition win")
        merged = dict(self._dims)
        merged.update(other._dims)
        return SearchSpace(merged.values())

    __or__ = union

    def subset(self, names: Sequence[str]) -> "SearchSpace":
        """Only the named dimensions, in this space's order."""
        wanted = set(self._known(names))
        return SearchSpace(d for d in self if d.name in wanted)

    def without(self, names: Sequence[str]) -> "SearchSpace":
        """Every dimension except the named ones."""
        unwanted = set(self._known(names))
        return SearchSpace(d for d in self if d.name not in unwanted)

    def narrow(self, name: str, low: Any = None, high: Any = None,
               choices: Optional[Sequence[Any]] = None, default: Any = None) -> "SearchSpace":
        """A copy with one dimension restricted to a sub-range or a subset of its choices."""
        narrowed = self[name].narrowed(low=low, high=high, choices=choices, default=default)
        return SearchSpace(narrowed if d.name == name else d for d in self)

    def _known(self, names: Sequence[str]) -> List[str]:
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self._dims]
        if unknown:
            raise ValueError(f"unknown dimensions {unknown}; this space has: {', '.join(self._dims)}")
        return names

    def describe(self) -> str:
        """A table of the dimensions: name, type, range or choices, default (and when, for a
        conditional space)."""
        rows = [("name", "type", "range / choices", "default", "when" if self.conditional else "")]
        for d in self:
            span = f"[{d.low:g}, {d.high:g}]" if d.is_range else ", ".join(map(str, d.choices))
            kind = d.type.value + (" (log)" if d.type.value == "int" and d.log else "")
            when = " and ".join(f"{p} in {list(v)}" for p, v in d.when or ())
            rows.append((d.name, kind, span, repr(d.baseline_value), when))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {e:<{widths[3]}}  {w}".rstrip()
                         for a, b, c, e, w in rows)

    # -- points ---------------------------------------------------------------------------
    def baseline(self) -> Dict[str, Any]:
        """The defaults as one point: the study's first trial, to measure HPO against (a
        conditional dimension only where the defaults of its parents make it active)."""
        point: Dict[str, Any] = {}
        for d in self:
            if d.active_given(point):
                point[d.name] = d.baseline_value
        return point

    def active(self, params: Mapping[str, Any]) -> List[SearchDimension]:
        """The dimensions searched at a point whose values are ``params`` (every dimension of
        a space without conditions). Parents come first, so one pass decides each in turn."""
        return [d for d in self if d.active_given(params)]

    def activating(self, name: str) -> Dict[str, Any]:
        """Parent values under which dimension ``name`` is searched (each parent's first listed
        value, and its own parents' in turn); {} for an unconditional dimension."""
        point: Dict[str, Any] = {}
        for parent, values in self[name].when or ():
            point.update(self.activating(parent))
            point[parent] = values[0]
        return point

    def validate_point(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError unless ``params`` sets every active dimension to a legal value,
        and nothing else."""
        active = {d.name for d in self.active(params)}
        missing = [n for n in active if n not in params]
        extra = [n for n in params if n not in self._dims]
        inactive = [n for n in params if n in self._dims and n not in active]
        bad = [f"{n}={params[n]!r}" for n in self._dims if n in params and not self._dims[n].contains(params[n])]
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"not in the space {extra}")
        if inactive:
            problems.append(f"set although their conditions do not hold {inactive}")
        if bad:
            problems.append(f"out of range {bad}")
        if problems:
            raise ValueError("invalid point for search space: " + "; ".join(problems))

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {"dimensions": [d.to_dict() for d in self]}

    @classmethod
    def from_dict(cls, data: Any) -> "SearchSpace":
        """Accepts ``{"dimensions": [...]}``, a bare list of dimension dicts, or a mapping
        ``{name: {type: ..., ...}}`` (the compact form used in YAML files)."""
        if isinstance(data, Mapping) and set(data) == {"dimensions"}:
            data = data["dimensions"]
        if isinstance(data, Mapping):
            items = []
            for name, spec in data.items():
                if not isinstance(spec, Mapping):
                    raise ValueError(f"dimension {name!r}: expected a mapping, got {spec!r}")
                if "name" in spec and spec["name"] != name:
                    raise ValueError(f"dimension {name!r}: its 'name' field says {spec['name']!r}")
                items.append({**spec, "name": name})
            data = items
        if not isinstance(data, list):
            raise ValueError(f"a search space must be a list or mapping of dimensions, got {type(data).__name__}")
        return cls(SearchDimension.from_dict(item) for item in data)

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "SearchSpace":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ValueError(f"search space JSON is not valid: {exc}") from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "SearchSpace":
        import yaml

        from ..yaml_io import load_yaml

        try:
            return cls.from_dict(load_yaml(text))
        except yaml.YAMLError as exc:
            raise ValueError(f"search space YAML is not valid: {exc}") from None

    def save(self, path: Union[str, Path]) -> Path:
        """Write as JSON or YAML, chosen by the file's suffix."""
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SearchSpace":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"search space file {str(path)!r} does not exist")
        text = path.read_text()
        return cls.from_yaml(text) if path.suffix in (".yaml", ".yml") else cls.from_json(text)

    def check_unconditional(self, what: str) -> None:
        """ValueError naming ``what`` (a search that cannot skip a dimension) for a conditional space."""
        conditional = [d.name for d in self if d.when]
        if conditional:
            raise ValueError(f"{what} cannot search a conditional space (dimensions with a 'when': {', '.join(conditional)}); "
                             "conditional spaces run on the optuna backend and on ray_tune with search_alg random, "
                             "optuna or bohb (schedulers other than pbt)")

    def grid_size(self, grid_points: int) -> int:
        """How many points a full grid of ``grid_points`` values per range has: the product
        over dimensions (every choice of a categorical)."""
        self.check_unconditional("a grid")
        size = 1
        for dim in self:
            size *= len(dim.grid_values(grid_points))
        return size


def _check_parents(dim: SearchDimension, earlier: Mapping[str, SearchDimension]) -> None:
    """A condition reads choice dimensions declared before it (so no cycle can form, and a
    define-by-run search meets every parent before its children), with values among their choices."""
    for parent, values in dim.when or ():
        if parent not in earlier:
            raise ValueError(f"dimension {dim.name!r}: when names {parent!r}, which is not a dimension declared "
                             "before it in this space")
        source = earlier[parent]
        if source.is_range:
            raise ValueError(f"dimension {dim.name!r}: when names {parent!r}, a range; a condition reads a "
                             "categorical or choice dimension")
        unknown = [v for v in values if not source.contains(v)]
        if unknown:
            raise ValueError(f"dimension {dim.name!r}: when[{parent!r}] values {unknown!r} are not among its "
                             f"choices {list(source.choices)!r}")
