"""What a user sees when a command is given wrongly: one line naming the problem and the fix, exit code 2.

Each case runs the installed ``mlops`` in a new process, as a user does, on a state directory that does not
exist yet: a choice refused while parsing must leave it uncreated (no database opened, nothing written).
The README's own-data recipe is run as written, on scikit-learn's breast-cancer data written to CSV.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from mlops_core import registry
from mlops_core.settings import PROJECT_ROOT, Settings

MLOPS = Path(sys.executable).with_name("mlops")
USER_ERROR_EXIT = 2


def run_mlops(args: list[str], state_dir: Path, cwd: Path = PROJECT_ROOT, timeout: float = 60, **env: str):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    environment.update(MLOPS_STATE_DIR=str(state_dir), **env)
    return subprocess.run(
        [str(MLOPS), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def csv_without_the_default_target(tmp_path: Path) -> Path:
    path = tmp_path / "no-target.csv"
    path.write_text("age,income\n30,1000\n40,2000\n")
    return path


# (arguments, words the one line must contain: the problem and the way out)
USER_ERRORS = [
    (["serving-mode", "foo"], ["'foo' is not one of 'champion', 'ab', 'shadow'", "mlops serving-mode --help"]),
    (["gx", "init-suite", "--data", "/nonexistent"], ["no file or directory at /nonexistent", "pass --data"]),
    (["gx", "init-suite", "--data", "{csv}"], ["target column 'defaulted' not found", "--target"]),
    (["data", "generate", "--scenario", "sideways"], ["'sideways' is not one of", "mlops data generate --help"]),
    (["promote", "3", "--alias", "king"], ["'king' is not one of 'champion', 'challenger'", "--help"]),
    (["bluegreen", "status", "--router", "moon"], ["'moon' is not one of 'local', 'kubernetes'", "--help"]),
    (["train", "--window-days", "0"], ["--window-days", "mlops train --help"]),
    (["keys", "create"], ["Missing option '--name'", "mlops keys create --help"]),
    (["trian"], ["No such command 'trian'", "mlops --help"]),
    (["keys", "revoke", "nope"], ["no active key with id 'nope'", "mlops keys list"]),
]


@pytest.mark.parametrize(("args", "words"), USER_ERRORS, ids=[" ".join(a) for a, _ in USER_ERRORS])
def test_each_user_error_is_one_line_with_exit_code_2(args, words, tmp_path, csv_without_the_default_target):
    state_dir = tmp_path / "state"
    args = [a.replace("{csv}", str(csv_without_the_default_target)) for a in args]
    done = run_mlops(args, state_dir)
    assert done.returncode == USER_ERROR_EXIT, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0]
    if "--help" in lines[0]:  # refused while parsing: before anything was opened or created
        assert not state_dir.exists()


def test_debug_shows_the_traceback(tmp_path):
    done = run_mlops(["--debug", "gx", "init-suite", "--data", "/nonexistent"], tmp_path / "state")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "UserError" in done.stderr


def readme_block(heading: str) -> str:
    """The first fenced bash block under ``heading`` in the README, as a user copies it."""
    section = PROJECT_ROOT.joinpath("README.md").read_text().split(f"\n{heading}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_the_readme_own_data_recipe_works_as_written(tmp_path, gx_context):
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    (tmp_path / "data").mkdir()
    frame.rename(columns={"target": "churned"}).to_csv(tmp_path / "data" / "customers.csv", index=False)
    recipe = readme_block("## Your own data")
    assert "mlops gx init-suite" in recipe and "mlops train" in recipe
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    environment.update(
        PATH=f"{MLOPS.parent}{os.pathsep}{os.environ['PATH']}",
        MLOPS_STATE_DIR=str(tmp_path / "state"),
        MLOPS_VALIDATION__CONTEXT_DIR=str(gx_context),
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (gx_context / "expectations" / "customers.json").exists()
    assert "registered churn version 1" in done.stdout
    versions = registry.model_versions(registry.connect(Settings(state_dir=tmp_path / "state")), "churn")
    assert [int(v.version) for v in versions] == [1]
