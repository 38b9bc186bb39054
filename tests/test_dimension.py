"""SearchDimension: validation names the dimension; baseline, membership, grid, narrowing."""

import math

import pytest

from stateset_hpo import SearchDimension as D
from stateset_hpo import SearchSpaceType as T


@pytest.mark.parametrize("kwargs, message", [
    (dict(type=T.UNIFORM, low=1.0, high=1.0), "low must be below high"),
    (dict(type=T.UNIFORM, low=2.0, high=1.0), "low must be below high"),
    (dict(type=T.LOGUNIFORM, low=0.0, high=1.0), "needs low > 0"),
    (dict(type=T.LOGUNIFORM, low=-1.0, high=1.0), "needs low > 0"),
    (dict(type=T.INT, low=0, high=10, log=True), "needs low > 0"),
    (dict(type=T.UNIFORM, low=0.0), "high is missing"),
    (dict(type=T.INT, high=3), "low is missing"),
    (dict(type=T.UNIFORM, low="0", high=1.0), "low must be a number"),
    (dict(type=T.UNIFORM, low=0.0, high=True), "high must be a number"),
    (dict(type=T.UNIFORM, low=0.0, high=float("inf")), "must be finite"),
    (dict(type=T.INT, low=0.5, high=3), "integer bounds"),
    (dict(type=T.UNIFORM, low=0.0, high=1.0, default=2.0), "outside"),
    (dict(type=T.UNIFORM, low=0.0, high=1.0, default="0.5"), "default must be a number"),
    (dict(type=T.INT, low=0, high=5, default=2.5), "default must be an integer"),
    (dict(type=T.UNIFORM, low=0.0, high=1.0, log=True), "use LOGUNIFORM"),
    (dict(type=T.UNIFORM, low=0.0, high=1.0, choices=[1]), "not choices"),
    (dict(type=T.CATEGORICAL, choices=[]), "must not be empty"),
    (dict(type=T.CATEGORICAL), "need a list of choices"),
    (dict(type=T.CATEGORICAL, choices="abc"), "need a list of choices"),
    (dict(type=T.CATEGORICAL, choices=["a", "b", "a"]), "duplicate choices: 'a'"),
    (dict(type=T.CHOICE, choices=[1, 2.0, 2]), "duplicate choices"),
    (dict(type=T.CHOICE, choices=[1, "2"]), "numbers only"),
    (dict(type=T.CHOICE, choices=[True, 2]), "numbers only"),
    (dict(type=T.CATEGORICAL, choices=["a", [1]]), "strings, numbers or booleans"),
    (dict(type=T.CATEGORICAL, choices=["a", "b"], default="c"), "not one of the choices"),
    (dict(type=T.CATEGORICAL, choices=["a", "b"], low=0), "not low/high"),
    (dict(type="gaussian", low=0, high=1), "unknown search space type"),
])
def test_invalid_dimensions_raise_a_clear_error_naming_the_dimension(kwargs, message):
    with pytest.raises(ValueError) as info:
        D("my_param", **kwargs)
    assert "my_param" in str(info.value)
    assert message in str(info.value)


def test_name_must_be_a_nonempty_string():
    with pytest.raises(ValueError, match="non-empty string"):
        D("", T.UNIFORM, low=0.0, high=1.0)


def test_float_is_an_alias_of_uniform_and_strings_parse():
    assert T.FLOAT is T.UNIFORM
    assert D("x", "float", low=0, high=1).type is T.UNIFORM
    assert D("x", "LOGUNIFORM", low=1e-3, high=1).type is T.LOGUNIFORM


def test_bounds_are_normalised_to_the_dimension_type():
    f = D("x", T.UNIFORM, low=0, high=1, default=1)
    assert isinstance(f.low, float) and isinstance(f.default, float)
    i = D("n", T.INT, low=1, high=8)
    assert isinstance(i.low, int) and isinstance(i.high, int)


def test_baseline_is_the_default_or_the_centre():
    assert D("x", T.UNIFORM, low=0.0, high=1.0, default=0.2).baseline_value == 0.2
    assert D("x", T.UNIFORM, low=0.0, high=1.0).baseline_value == 0.5
    assert D("x", T.LOGUNIFORM, low=1e-6, high=1e-2).baseline_value == pytest.approx(1e-4)
    assert D("n", T.INT, low=1, high=100, log=True).baseline_value == 10
    assert D("c", T.CATEGORICAL, choices=["a", "b"]).baseline_value == "a"


def test_contains_checks_type_and_range():
    i = D("n", T.INT, low=1, high=4)
    assert i.contains(1) and i.contains(4) and not i.contains(5) and not i.contains(2.5)
    assert not i.contains(True)
    c = D("c", T.CATEGORICAL, choices=[True, 1, "1"])
    assert c.choice_index(True) == 0 and c.choice_index(1) == 1 and c.choice_index("1") == 2
    assert not D("c", T.CHOICE, choices=[1, 2]).contains(True)


def test_grid_values_cover_the_range_and_choices():
    assert D("x", T.UNIFORM, low=0.0, high=1.0).grid_values(3) == [0.0, 0.5, 1.0]
    logs = D("x", T.LOGUNIFORM, low=1e-4, high=1e-2).grid_values(3)
    assert logs[0] == 1e-4 and logs[1] == pytest.approx(1e-3) and logs[2] == 1e-2
    assert D("n", T.INT, low=1, high=3).grid_values(5) == [1, 2, 3]
    assert D("c", T.CHOICE, choices=[4, 8]).grid_values(3) == [4, 8]
    with pytest.raises(ValueError, match="grid points"):
        D("x", T.UNIFORM, low=0.0, high=1.0).grid_values(1)


def test_narrowing_stays_inside_and_keeps_a_valid_default():
    d = D("lr", T.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5)
    n = d.narrowed(low=1e-5, high=1e-4)
    assert (n.low, n.high, n.default) == (1e-5, 1e-4, 1e-5)
    assert d.narrowed(low=1e-4).default is None  # old default fell outside: centre is used
    with pytest.raises(ValueError, match="stay inside"):
        d.narrowed(high=1e-2)
    c = D("opt", T.CATEGORICAL, choices=["a", "b", "c"], default="b")
    assert c.narrowed(choices=["b", "c"]).choices == ("b", "c")
    with pytest.raises(ValueError, match="not among"):
        c.narrowed(choices=["z"])
    with pytest.raises(ValueError, match="not low/high"):
        c.narrowed(low=1)


def test_dict_round_trip_and_unknown_keys():
    d = D("n", T.INT, low=1, high=64, log=True, default=8, description="width")
    assert D.from_dict(d.to_dict()) == d
    with pytest.raises(ValueError, match="unknown keys"):
        D.from_dict({"name": "x", "type": "uniform", "low": 0, "high": 1, "lo": 0})
    with pytest.raises(ValueError, match="missing 'type'"):
        D.from_dict({"name": "x", "low": 0, "high": 1})
    assert not math.isnan(d.baseline_value)
