"""Watching a study as it runs: the progress view (live on a terminal, plain lines elsewhere),
quiet libraries, and the study in optuna-dashboard."""

import io
import logging
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import study_config

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.plots import PNG_NAMES
from stateset_hpo.progress import StudyProgress, duration
from stateset_hpo.results import HPOResult, TrialStatus
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

SPACE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4)])


def feed(progress, clock, events):
    """Play (seconds, event, args) through ``progress`` with time.monotonic at ``seconds``."""
    for at, event, *args in events:
        clock[0] = at
        getattr(progress, event)(*args)


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_plain_lines_count_every_outcome_with_the_best_so_far_and_an_eta(clock):
    out = io.StringIO()  # not a terminal: plain lines only
    progress = StudyProgress(HPOConfig(n_trials=4, output_dir="unused"), stream=out)
    assert not progress.live
    feed(progress, clock, [
        (0, "on_hpo_start", SPACE, 4),
        (0, "on_trial_start", "a", {}), (5, "on_trial_result", "a", {"iteration": 1, "eval_reward": 0.3}),
        (10, "on_trial_end", HPOResult("a", {}, {"eval_reward": 0.3}, best_metric=0.3)),
        (10, "on_trial_start", "b", {}),
        (20, "on_trial_end", HPOResult("b", {}, best_metric=0.1, status=TrialStatus.PRUNED,
                                       stop_reason="pruned by the median pruner at iteration 1")),
        (20, "on_trial_start", "c", {}),
        (30, "on_trial_end", HPOResult("c", {}, status=TrialStatus.FAILED, error="boom")),
    ])
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all("\x1b" not in line for line in lines)  # no escape codes in a log
    assert lines[0].startswith("[1/4] trial a success eval_reward=0.3000") and "eta 30s" in lines[0]
    assert "pruned 1" in lines[1] and lines[1].endswith("(pruned by the median pruner at iteration 1)")
    assert "success 1  pruned 1  failed 1  best 0.3000  elapsed 30s  eta 10s" in lines[2]


def test_the_eta_is_capped_by_the_timeout_and_unknown_before_a_trial_ends(clock):
    progress = StudyProgress(HPOConfig(n_trials=100, timeout=60, output_dir="unused"), stream=io.StringIO())
    feed(progress, clock, [(0, "on_hpo_start", SPACE, 100), (0, "on_trial_start", "a", {})])
    assert progress.eta() is None
    feed(progress, clock, [(10, "on_trial_end", HPOResult("a", {}, best_metric=1.0))])
    assert progress.eta() == 50  # 99 trials at 10 s each would be 990 s, the timeout ends it sooner
    assert [duration(s) for s in (None, 42, 185, 3720)] == ["-", "42s", "3m05s", "1h02m"]


def test_on_a_terminal_the_running_trials_are_shown_live_with_their_iteration(clock):
    from rich.console import Console

    out = io.StringIO()
    progress = StudyProgress(HPOConfig(n_trials=2, output_dir="unused"), stream=out, live=True)
    feed(progress, clock, [(0, "on_hpo_start", SPACE, 2), (0, "on_trial_start", "a", {}),
                           (4, "on_trial_result", "a", {"iteration": 3, "eval_reward": 0.25})])
    console = Console(file=io.StringIO(), width=120)
    console.print(progress._panel())
    shown = console.file.getvalue()
    assert "0/2 trials" in shown and re.search(r"a\s+3\s+0\.2500\s+4s", shown)
    feed(progress, clock, [(8, "on_trial_end", HPOResult("a", {}, best_metric=0.25)), (8, "on_hpo_end", None)])
    assert "[1/2] trial a success eval_reward=0.2500" in out.getvalue()


def test_a_study_shows_its_progress_unless_verbose_is_off(tmp_path, capsys):
    spec = TrialSpec(objective=lambda p: {"score": p["learning_rate"]})
    run_study(study_config(tmp_path, "optuna", search_space=SPACE, objective_metric="score", n_trials=2,
                           verbose=True), spec)
    shown = capsys.readouterr().out
    assert "[2/2] trial 1 success" in shown and "Trial 1 finished" not in shown  # Optuna's own line stays out
    run_study(study_config(tmp_path, "optuna", search_space=SPACE, objective_metric="score", n_trials=2), spec)
    assert capsys.readouterr().out == ""


def test_optunas_trial_lines_are_logged_only_with_library_logs(tmp_path):
    # (read from the "optuna" logger: Optuna's own handler writes to the stderr of its import time)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("optuna").addHandler(handler)
    spec = TrialSpec(objective=lambda p: {"score": p["learning_rate"]})
    try:
        for library_logs in (False, True):
            records.clear()
            run_study(study_config(tmp_path / str(library_logs), "optuna", search_space=SPACE, objective_metric="score",
                                   n_trials=2, library_logs=library_logs), spec)
            finished = [r for r in records if "Trial 1 finished with value" in r.getMessage()]
            assert bool(finished) is library_logs
    finally:
        logging.getLogger("optuna").removeHandler(handler)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bitsandbytes_cpu_kernel_warning_is_dropped_and_its_loggers_other_warnings_pass(caplog):
    """peft imports bitsandbytes, which on this kind of CPU warns that it cannot fetch an optional
    Hub kernel: every trial process printed it. Checked on the real import against a control
    process that imports peft without us."""
    line = "Failed to load CPU gemm_4bit_forward from kernels-community"
    control = subprocess.run([sys.executable, "-c", "import peft"], capture_output=True, text=True, timeout=120)
    ours = subprocess.run([sys.executable, "-c", "import stateset_hpo.grpo.trainer, peft"], capture_output=True,
                          text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert line not in ours.stderr + ours.stdout
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.backends.cpu.ops"):
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(line + ": %s", "no network")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("another bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["another bitsandbytes warning"]
    if line not in control.stderr:
        pytest.skip("this machine's bitsandbytes does not print the line (no bitsandbytes, or a CPU without "
                    "AVX512-BF16): only the logger filter was checked")


@pytest.mark.slow  # starts the optuna-dashboard server (CI runs it)
def test_optuna_dashboard_serves_a_finished_study_with_every_trial(tmp_path):
    spec = TrialSpec(objective=lambda p: {"score": p["learning_rate"]})
    summary = run_study(study_config(tmp_path, "wandb", search_space=SPACE, objective_metric="score", n_trials=3),
                        spec)
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), str(tmp_path / "out" / "dashboard.journal"),
                               "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import json

        for _ in range(60):
            try:
                studies = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2))
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"optuna-dashboard did not answer: {server.stderr.read1().decode()[-500:]}")
        (study,) = studies["study_summaries"]
        detail = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}"))
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * 3
        assert [t["intermediate_values"][0]["value"] for t in detail["trials"]] == \
            [r.best_metric for r in summary.all_results]
    finally:
        server.terminate()
        server.wait(10)


def _browser():
    """Headless Chromium through Selenium, or a skip that says how to get it."""
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium here: `apt-get install chromium chromium-driver` (Debian) runs the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # (no network here: Chromium's background connections would be refused, many at a time)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow  # a browser (CI runs it)
def test_the_report_and_the_plots_render_in_a_real_browser(tmp_path):
    artefacts = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
    space = SearchSpace([*SPACE, SearchDimension("kl_penalty_coef", SearchSpaceType.UNIFORM, low=0.0, high=0.1,
                                                 default=0.01)])
    spec = TrialSpec(objective=lambda p: {"score": -abs(math.log10(p["learning_rate"]) + 3) - p["kl_penalty_coef"]})
    summary = run_study(study_config(tmp_path, "optuna", search_space=space, objective_metric="score", n_trials=10,
                                     save_plots=True), spec)
    assert summary.n_successful == 10  # enough for the importance plot
    browser = _browser()
    try:
        browser.get((tmp_path / "out" / "report.html").as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        assert sorted(images) == sorted([f"plots/{name}", True] for name in PNG_NAMES)
        assert "study: backend=optuna" in browser.find_element("css selector", "ul.settings").text
        assert "kl_penalty_coef" in browser.find_element("css selector", "pre.space").text  # the space, as searched
        artefacts.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(artefacts / "report.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors

        browser.get((tmp_path / "out" / "plots" / "plots.html").as_uri())
        titles = browser.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.layout.title.text)")
        assert titles == ["Optimization history", "Optimization history against wall time",
                          "Parameter importances (fANOVA)", "Parallel coordinates", "Learning curves"]
        drawn = browser.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
        assert drawn >= len(titles)  # every figure drew its SVG, so plotly.js ran (it is embedded: no network)
        browser.save_screenshot(str(artefacts / "plots.png"))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        browser.quit()


def test_raylet_messages_stay_off_the_console_unless_asked_for(capsys):
    from ray._private import worker

    from stateset_hpo.search.ray.connect import show_raylet_messages

    message = {"lines": ["12 PYTHON worker processes have been started on node ..."], "pid": "raylet",
               "is_err": False}
    try:
        show_raylet_messages(False)
        worker.print_to_stdstream(message, ignore_prefix=False)  # what Ray's listener thread calls
        worker.print_to_stdstream({**message, "pid": 4242, "lines": ["a worker's own line"]}, ignore_prefix=False)
        hidden = capsys.readouterr()
        show_raylet_messages(True)  # --verbose
        worker.print_to_stdstream(message, ignore_prefix=False)
        shown = capsys.readouterr()
    finally:
        show_raylet_messages(False)
    assert "worker processes" not in hidden.out + hidden.err and "a worker's own line" in hidden.out + hidden.err
    assert "12 PYTHON worker processes" in shown.out + shown.err
