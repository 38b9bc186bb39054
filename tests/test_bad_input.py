"""Bad input is one clear error, early, before any work: numbers as people write them, impossible
requests, an unwritable output folder, an unreachable cluster, an objective no trial reports, a
value of the space that cannot be trained, a Hub model that does not exist."""


import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from helpers import LR_WIDE

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.launch import main
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec
from stateset_hpo.yaml_io import load_yaml


def test_numbers_written_with_an_exponent_are_numbers_everywhere(tmp_path, capsys):
    assert load_yaml("a: 1e-5\nb: -3E+2\nc: '1e-5'\nd: e5\ne: 7") == {"a": 1e-5, "b": -300.0, "c": "1e-5", "d": "e5",
                                                                      "e": 7}
    assert main(["--space", "conservative", "--set", "learning_rate=1e-5", "--dry-run"]) == 0
    assert "'learning_rate': 1e-05" in capsys.readouterr().out
    (tmp_path / "hpo.yaml").write_text("backend: optuna\ntimeout: 3e3\nbase_training_config:\n  learning_rate: 2e-4\n")
    config = HPOConfig.from_yaml(tmp_path / "hpo.yaml")
    assert config.timeout == 3000.0 and config.base_training_config == {"learning_rate": 2e-4}
    space = SearchSpace.from_yaml("learning_rate:\n  type: loguniform\n  low: 1e-6\n  high: 1e-3\n")
    assert space["learning_rate"].low == 1e-6


@pytest.mark.parametrize("args, message", [
    (["--gpu-per-trial", "1.5"], "must be a whole number of GPUs"),
    (["--gpu-per-trial", "0.5", "--workers-per-trial", "2"], "several ranks of one trial on one GPU"),
    (["--storage-path", "s3:/bucket/hpo"], "looks like a URI missing a slash"),
    (["--backend", "optuna", "--storage", "sqlite:/hpo.db"], "write sqlite:///hpo.db (the file hpo.db here) or "
                                                              "sqlite:////hpo.db"),
])
def test_impossible_requests_exit_2_before_anything_starts(args, message, capsys):
    assert main(["--space", "conservative", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_output_dir_fails_before_any_trial(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["--space", "conservative", "--output-dir", str(blocker / "results"), "--dry-run"]) == 2
    assert "is not a writable folder" in capsys.readouterr().err
    calls = []
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=2, output_dir=str(blocker / "results"))
    with pytest.raises(ValueError, match="is not a writable folder"):
        run_study(config, TrialSpec(objective=lambda p: calls.append(p) or {"eval_reward": 1.0}))
    assert calls == []  # no trial ran


def test_an_unreachable_cluster_address_is_one_line_in_seconds(monkeypatch, capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    start = time.monotonic()
    assert main(["--space", "conservative", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"cannot connect to the Ray cluster at '127.0.0.1:{port}'" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("metric, message", [("rewrd", "objective metric 'rewrd' is reported by no trial"),
                                             ("test_reward", "objective metric 'test_reward' is reported by no trial")])
def test_an_objective_no_trial_reports_fails_before_any_trial(metric, message, capsys):
    assert main(["--space", "conservative", "--metric", metric, "--dry-run"]) == 2
    assert message in capsys.readouterr().err
    assert main(["--space", "conservative", "--metric", "kl", "--direction", "minimize", "--dry-run"]) == 0


def test_every_choice_and_range_end_of_the_space_is_checked_before_any_trial(tmp_path, capsys):
    from helpers import tiny_spec

    bad_choice = SearchSpace([SearchDimension("max_new_tokens", SearchSpaceType.CHOICE, choices=[24, 0], default=24)])
    bad_end = SearchSpace([SearchDimension("warmup_ratio", SearchSpaceType.UNIFORM, low=0.0, high=1.5, default=0.1)])
    for space, message in [(bad_choice, "'max_new_tokens': the value 0 cannot be trained"),
                           (bad_end, "'warmup_ratio': the value 1.5 cannot be trained")]:
        config = HPOConfig(backend="optuna", search_space=space, n_trials=2, output_dir=str(tmp_path))
        with pytest.raises(ValueError, match=message):
            run_study(config, tiny_spec())
    (tmp_path / "space.yaml").write_text(bad_choice.to_yaml())
    assert main(["--space-file", str(tmp_path / "space.yaml"), "--dry-run"]) == 2
    assert "the value 0 cannot be trained" in capsys.readouterr().err


def test_a_hub_model_name_is_checked_and_the_check_says_what_it_found(monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    from stateset_hpo.grpo.agent import hub_model_status

    def unknown(name, **kwargs):  # what the Hub answers for a name it does not have
        import httpx2

        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{name}")
        raise RepositoryNotFoundError(f"404: {name}", response=httpx2.Response(404, request=request))

    hub_model_status.cache_clear()
    monkeypatch.setattr(huggingface_hub, "model_info", unknown)
    assert main(["--space", "conservative", "--model", "nobody/no-such-model", "--dry-run"]) == 2
    assert "neither a local path nor a model on the Hugging Face Hub" in capsys.readouterr().err
    hub_model_status.cache_clear()
    monkeypatch.setattr(huggingface_hub, "model_info", lambda name, **kwargs: object())
    assert main(["--space", "conservative", "--model", "someone/a-model", "--dry-run"]) == 0
    assert "model: someone/a-model: on the Hub (not cached: each node downloads it) (checked on" in capsys.readouterr().out
    hub_model_status.cache_clear()


@pytest.mark.parametrize("name, text, message", [
    ("hpo.yaml", "backend: optuna\nn_trials: 3\nn_trials: 5\n", "the key 'n_trials' is given twice (line 3)"),
    ("hpo.yaml", "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                 "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                 "f: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "expands to 1234573 values through its aliases"),
    ("scenarios.yaml", "- {domain: customer_service}\n- {domain: a, domain: b}\n", "the key 'domain' is given twice"),
])
def test_a_yaml_file_that_hides_or_multiplies_values_is_one_short_line(tmp_path, capsys, name, text, message):
    """A key given twice would silently drop the first value; a few hundred bytes of nested
    aliases would expand to gigabytes in any message that echoes the value."""
    (tmp_path / name).write_text(text)
    flag = ["--config", str(tmp_path / name)] if name == "hpo.yaml" else ["--backend", "optuna", "--scenarios",
                                                                           str(tmp_path / name)]
    assert main([*flag, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and len(err) < 700


def test_an_error_echoing_a_huge_value_is_cut_to_one_short_line(capsys):
    assert main(["--backend", "optuna", "--set", "learning_rate=" + "a" * 5000, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 700
    assert main(["--backend", "optuna", "--set", "learning_rate=" + "9" * 5000, "--dry-run"]) == 2  # past int's limit
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--set learning_rate: cannot read value" in err
    from stateset_hpo.launch import one_line  # whatever a message echoes, the line stays short

    assert one_line(ValueError("x" * 5000)).endswith("... (5000 characters in all)")
    assert one_line(ValueError("while parsing\n  in line 2\n    ^\nexpected ']'")) == \
        "while parsing; in line 2; expected ']'"


def test_numbers_too_large_for_a_float_are_one_line(tmp_path, capsys):
    big = "1" + "0" * 400
    (tmp_path / "space.yaml").write_text(f"learning_rate:\n  type: loguniform\n  low: 1e-6\n  high: {big}\n")
    for args in (["--set", f"learning_rate={big}"], ["--health", f"kl_max={big}"], ["--budget", f"cpu_hours={big}"],
                 ["--space-file", str(tmp_path / "space.yaml")]):
        assert main(["--backend", "optuna", *args, "--dry-run"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err and len(err) < 300, err


@pytest.mark.parametrize("code", ["def f(:\n", "raise RuntimeError('boom at import')\n",
                                  "import sys\ndef f(completions, **kwargs):\n    sys.exit(3)\n"])
def test_a_reward_module_that_cannot_load_or_exits_is_one_line(tmp_path, monkeypatch, capsys, code):
    monkeypatch.chdir(tmp_path)
    name = f"user_reward_{abs(hash(code))}"
    (tmp_path / f"{name}.py").write_text(code)
    scenarios = os.path.join(os.path.dirname(__file__), "..", "examples", "data", "order_status.jsonl")
    assert main(["--backend", "optuna", "--scenarios", str(scenarios), "--reward", f"{name}:f", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (name in err or "SystemExit: 3" in err), err


@pytest.mark.parametrize("setting, message", [
    ("seed=18446744073709551616", "TrainingConfig.seed must be an integer from 0 to 2147483647"),
    ("lora_target_modules=17", "TrainingConfig.lora_target_modules must be a module name pattern or a list"),
])
def test_training_settings_that_would_fail_every_trial_are_refused_first(capsys, setting, message):
    assert main(["--backend", "optuna", "--set", setting, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_a_resume_with_nothing_to_continue_and_a_dangling_output_link_fail_in_the_dry_run(tmp_path, capsys):
    assert main(["--backend", "optuna", "--resume", "--dry-run"]) == 2  # an in-memory study left nothing
    assert "needs a persistent optuna_config['storage']" in capsys.readouterr().err
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    assert main(["--backend", "optuna", "--output-dir", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "whose target" in capsys.readouterr().err and not (tmp_path / "gone").exists()


def test_scenario_and_config_files_of_the_wrong_kind_are_named(tmp_path, capsys):
    scenarios = os.path.join(os.path.dirname(__file__), "..", "examples", "data", "order_status.jsonl")
    (tmp_path / "scen.txt").write_text(open(scenarios).read())
    assert main(["--backend", "optuna", "--scenarios", str(tmp_path / "scen.txt"), "--dry-run"]) == 2
    assert "a scenario file must end with one of .jsonl" in capsys.readouterr().err
    (tmp_path / "latin.jsonl").write_bytes(b'\xff\xfe{"a": 1}\n')
    assert main(["--backend", "optuna", "--scenarios", str(tmp_path / "latin.jsonl"), "--dry-run"]) == 2
    assert "latin.jsonl' is not UTF-8 text" in capsys.readouterr().err
    (tmp_path / "hpo.yaml").write_text("backend: optuna\nbase_training_config: hello\n")
    assert main(["--config", str(tmp_path / "hpo.yaml"), "--dry-run"]) == 2
    assert "base_training_config must be a TrainingConfig or a mapping of its fields" in capsys.readouterr().err


_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["", "-1", "0", "1e400", "nan", "inf", "-inf", "1" + "0" * 400,
                                                          "[1, 2", "{a: 1}", "*x", "&a [*a]", "s3:/x", "../..", "yes",
                                                          "null", "\x00", "é"]))


def _value_flags():
    from stateset_hpo.launch import build_parser

    skip = {"--config", "--space-file", "--scenarios", "--task", "--reward", "--judge", "--model", "--output-dir",
            "--storage", "--storage-path", "--dashboard-storage", "--address"}  # (paths: their own tests)
    return sorted(option for action in build_parser()._actions for option in action.option_strings
                  if option.startswith("--") and action.nargs != 0 and option not in skip and option != "--help")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(_value_flags()), value=_VALUES)
def test_any_value_of_any_flag_is_taken_or_refused_in_one_short_line(tmp_path, monkeypatch, capsys, flag, value):
    """Generated bad input: whatever a flag is given, the CLI accepts it or exits 2 with one
    line naming the problem (no traceback, no thousand-character echo), and creates nothing."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        code = main(["--backend", "optuna", "--space", "conservative", flag, value, "--dry-run"])
    except SystemExit as exit:  # argparse: a value of the wrong type or outside the choices
        code = exit.code
    err = capsys.readouterr().err.strip()
    assert code in (0, 2), (flag, value, err[-500:])
    if code == 2:
        assert "Traceback" not in err and len(err) < 700, (flag, value, err[-500:])
        assert len(err.splitlines()) == 1 or err.splitlines()[0].startswith("usage:"), (flag, value, err[-500:])
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _config_keys():
    import dataclasses

    return sorted(f.name for f in dataclasses.fields(HPOConfig))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(_config_keys()), value=_VALUES)
def test_any_value_of_any_config_key_is_taken_or_refused_in_one_short_line(tmp_path, capsys, key, value):
    """The same over --config files: every HPOConfig key, odd YAML values."""
    import json

    path = tmp_path / "hpo.yaml"
    path.write_text(f"backend: optuna\nsearch_space_name: conservative\noutput_dir: {json.dumps(str(tmp_path / 'o'))}\n"
                    + ("" if key in ("backend", "search_space_name", "output_dir") else f"{key}: {value}\n"))
    code = main(["--config", str(path), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code in (0, 2), (key, value, err[-500:])
    if code == 2:
        assert "Traceback" not in err and len(err) < 700 and len(err.splitlines()) == 1, (key, value, err[-500:])
    assert not (tmp_path / "o").exists()



@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["uniform", "loguniform", "int", "choice", "categorical", "normal", "", "[1]"]),
       field=st.sampled_from(["low", "high", "choices", "default", "log", "type", "extra"]), value=_VALUES)
def test_any_space_file_is_taken_or_refused_in_one_short_line(tmp_path, capsys, kind, field, value):
    """The same over --space-file: a dimension of any type with any of its fields oddly set."""
    path = tmp_path / "space.yaml"
    shown = kind or "''"
    path.write_text(f"learning_rate:\n  type: {shown}\n  low: 1e-5\n  high: 1e-3\n  {field}: {value}\n")
    code = main(["--backend", "optuna", "--space-file", str(path), "--output-dir", str(tmp_path / "o"), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code in (0, 2), (kind, field, value, err[-500:])
    if code == 2:
        assert "Traceback" not in err and len(err) < 700 and len(err.splitlines()) == 1, (kind, field, value, err)
    assert not (tmp_path / "o").exists()



_SCENARIO_FIELDS = ["id", "topic", "user_goal", "context", "user_responses", "opening", "facts", "expected_actions",
                    "forbidden", "reference_reply", "item", "split", "domain", "extra"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_SCENARIO_FIELDS), value=_VALUES, row=st.integers(0, 5))
def test_any_scenario_file_is_taken_or_refused_in_one_short_line(tmp_path, capsys, field, value, row):
    """The same over --scenarios: the example file with one field of one scenario oddly set (its
    value read as YAML), or a row of it replaced by that value."""
    import json

    import yaml

    source = os.path.join(os.path.dirname(__file__), "..", "examples", "data", "order_status.jsonl")
    rows = [json.loads(line) for line in open(source) if line.strip()]
    try:
        odd = yaml.safe_load(value)
    except yaml.YAMLError:
        odd = value
    if field == "extra":
        rows[row % len(rows)] = odd
    else:
        rows[row % len(rows)][field] = odd
    path = tmp_path / "scenarios.jsonl"
    try:
        text = "\n".join(json.dumps(r, default=str) for r in rows) + "\n"
    except ValueError:  # a YAML alias that refers to itself: no JSON line can hold it
        assume(False)
    path.write_text(text)
    code = main(["--backend", "optuna", "--scenarios", str(path), "--output-dir", str(tmp_path / "o"), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code in (0, 2), (field, value, err[-500:])
    if code == 2:
        assert "Traceback" not in err and len(err) < 700 and len(err.splitlines()) == 1, (field, value, err)
    assert not (tmp_path / "o").exists()


_SECRET = "hunter2-s3cr3t"
_SECRET_SHAPES = ["s3://AKIAEXAMPLE:{s}@bucket/hpo", "gs://user:{s}@bucket/hpo", "postgresql://hpo:{s}@db:5432/hpo",
                  "mysql+pymysql://hpo:{s}@db/hpo", "sqlite:///hpo.db?password={s}", "s3:/AKIAEXAMPLE:{s}@bucket",
                  "redis://:{s}@cache:6379/0", "https://host/x?token={s}&a=1", "s3://bucket/hpo?secret_key={s}"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from([("--storage", "optuna"), ("--storage-path", "ray_tune"), ("--dashboard-storage", "optuna"),
                             ("--dashboard-storage", "ray_tune")]),
       shape=st.sampled_from(_SECRET_SHAPES), suffix=st.sampled_from(["", "/", "x", "?a=1", "%", ":", "@", "//y"]))
def test_a_secret_in_any_storage_flag_is_never_echoed(tmp_path, monkeypatch, capsys, flag, shape, suffix):
    """Generated: credentials inside a storage URL, in any of the forms users write them, valid
    or not: whatever the CLI prints (the study's settings, or its one-line error) masks them."""
    monkeypatch.chdir(tmp_path)
    name, backend = flag
    main(["--backend", backend, "--space", "conservative", name, shape.format(s=_SECRET) + suffix, "--dry-run"])
    out = capsys.readouterr()
    assert _SECRET not in out.out + out.err, (name, shape, suffix, (out.out + out.err)[-600:])
