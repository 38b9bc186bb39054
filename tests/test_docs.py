"""Every code block in README.md and docs/ works as written.

- Every Python block compiles, and every name it imports exists (a module renamed or moved
  breaks this test, not a user's first try).
- A Python block marked ``<!-- doc:run -->`` runs to its end in a fresh process (those are
  written with budgets that finish in seconds on the tiny model).
- Every ``python -m stateset_hpo.launch`` command (also inside ``ray job submit``) passes the
  CLI's own validation: it is run with ``--dry-run`` added.
"""

import ast
import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?P<marker><!-- doc:run -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def blocks(lang):
    out = []
    for page in PAGES:
        for i, m in enumerate(FENCE.finditer(page.read_text())):
            if m.group("lang") == lang:
                out.append(pytest.param(m.group("code"), bool(m.group("marker")),
                                        id=f"{page.relative_to(ROOT)}:{i}"))
    return out


def test_every_page_has_been_found():
    python = [p.values for p in blocks("python")]
    assert len(PAGES) >= 6 and len(python) >= 8 and any(run for _, run in python)
    assert len(launch_commands()) >= 5


@pytest.mark.parametrize("code, run", blocks("python"))
def test_python_block_compiles_and_its_imports_exist(code, run):
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:  # a name in the module, or a submodule (from ray import tune)
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


# (each is a small study: slow-marked like the other end-to-end runs; CI runs them)
@pytest.mark.parametrize("code, run", [pytest.param(*p.values, id=p.id, marks=pytest.mark.slow)
                                       for p in blocks("python") if p.values[1]])
def test_marked_python_block_runs_to_its_end(code, run, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # blocks may read examples/hpo.yaml
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def launch_commands():
    out = []
    for page in [*PAGES, ROOT / "cluster" / "README.md"]:
        for m in FENCE.finditer(page.read_text()):
            if m.group("lang") != "bash":
                continue
            text = m.group("code").replace("\\\n", " ")
            for line in text.splitlines():
                if "python -m stateset_hpo.launch" in line and "pip install" not in line:
                    args = shlex.split(line.split("python -m stateset_hpo.launch", 1)[1].split("&&")[0])
                    out.append(pytest.param(args, id=f"{page.relative_to(ROOT)}:{' '.join(args)[:40]}"))
    return out


@pytest.mark.parametrize("args", launch_commands())
def test_documented_command_is_a_valid_study(args, tmp_path):
    from stateset_hpo.launch import main

    args = [a.replace("$STUDY", "study").replace("${STUDY}", "study") for a in args if a != "--resume"]
    cwd = os.getcwd()
    os.chdir(ROOT)  # paths in the docs (examples/hpo.yaml) are relative to the repository
    try:
        assert main([*args, "--dry-run", "--output-dir", str(tmp_path)]) == 0
    finally:
        os.chdir(cwd)
