"""SearchSpace: composition, baseline point, serialisation to dict/JSON/YAML and files."""

import pytest

from stateset_hpo import SearchDimension as D
from stateset_hpo import SearchSpace
from stateset_hpo import SearchSpaceType as T


@pytest.fixture
def space():
    return SearchSpace([
        D("lr", T.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5),
        D("layers", T.INT, low=1, high=8),
        D("opt", T.CATEGORICAL, choices=["adam", "sgd"], default="sgd"),
        D("bs", T.CHOICE, choices=[8, 16, 32], default=16),
    ])


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate dimension name 'x'"):
        SearchSpace([D("x", T.UNIFORM, low=0, high=1), D("x", T.INT, low=0, high=1)])
    with pytest.raises(ValueError, match="SearchDimension objects"):
        SearchSpace([{"name": "x"}])


def test_union_clash_is_an_error_unless_overridden(space):
    other = SearchSpace([D("lr", T.LOGUNIFORM, low=1e-5, high=1e-4), D("wd", T.UNIFORM, low=0, high=0.1)])
    with pytest.raises(ValueError, match="both define lr"):
        space | other
    merged = space.union(other, override=True)
    assert merged.names == ["lr", "layers", "opt", "bs", "wd"]
    assert merged["lr"].low == 1e-5
    assert space["lr"].low == 1e-6  # the original is untouched


def test_subset_without_and_narrow(space):
    assert space.subset(["bs", "lr"]).names == ["lr", "bs"]
    assert space.without("opt").names == ["lr", "layers", "bs"]
    with pytest.raises(ValueError, match="unknown dimensions"):
        space.subset(["nope"])
    narrowed = space.narrow("layers", low=2, high=4).narrow("opt", choices=["adam"])
    assert (narrowed["layers"].low, narrowed["layers"].high) == (2, 4)
    assert narrowed["opt"].choices == ("adam",) and narrowed["opt"].baseline_value == "adam"
    with pytest.raises(KeyError, match="no dimension 'x'"):
        space.narrow("x", low=0)


def test_baseline_is_a_valid_point(space):
    point = space.baseline()
    assert point == {"lr": 1e-5, "layers": 4, "opt": "sgd", "bs": 16}
    space.validate_point(point)
    with pytest.raises(ValueError, match="out of range"):
        space.validate_point({**point, "layers": 9})
    with pytest.raises(ValueError, match="missing"):
        space.validate_point({"lr": 1e-5})


def test_dict_json_yaml_and_file_round_trips(space, tmp_path):
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert SearchSpace.from_json(space.to_json()) == space
    assert SearchSpace.from_yaml(space.to_yaml()) == space
    for name in ("s.json", "s.yaml"):
        assert SearchSpace.load(space.save(tmp_path / name)) == space
    assert "NaN" not in space.to_json()


def test_compact_yaml_mapping_form():
    text = """
lr: {type: loguniform, low: 1.0e-6, high: 1.0e-3}
opt: {type: categorical, choices: [adam, sgd]}
"""
    space = SearchSpace.from_yaml(text)
    assert space.names == ["lr", "opt"] and space["lr"].type is T.LOGUNIFORM


@pytest.mark.parametrize("text, message", [
    ("lr: {type: uniform, low: 1, high: 0}", "low must be below high"),
    ("[1, 2", "not valid"),
    ("lr: 3", "expected a mapping"),
    ("42", "must be a list or mapping"),
])
def test_bad_files_give_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_yaml(text)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        SearchSpace.load(tmp_path / "nope.yaml")


def test_describe_lists_every_dimension(space):
    table = space.describe()
    for name in space.names:
        assert name in table


def test_a_prior_is_refused_with_what_to_do_instead():
    with pytest.raises(ValueError, match="'prior' is not supported: .* give the recommended value as the dimension's "
                                         "default"):
        SearchSpace.from_yaml("lr: {type: loguniform, low: 1.0e-5, high: 1.0e-3, prior: 1.0e-4}")
