import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_core import registry
from mlops_core.settings import PROJECT_ROOT
from tooling.cli import app

runner = CliRunner()


def test_generate_writes_dated_batches_deterministically(tmp_path):
    args = ["data", "generate", "--rows", "900", "--days", "3", "--start", "2026-11-01", "--seed", "5"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    assert "wrote 900 rows in 3 batches" in first.output
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["2026-11-01.parquet", "2026-11-02.parquet", "2026-11-03.parquet"]
    assert second.exit_code == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a" / names[0]), pd.read_parquet(tmp_path / "b" / names[0])
    )


def test_generate_refuses_an_unknown_scenario(tmp_path):
    result = runner.invoke(app, ["data", "generate", "--scenario", "sideways", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "sideways" in result.output


def test_settings_come_from_the_environment(settings, monkeypatch):
    monkeypatch.setenv("MLOPS_TRAINING__HOLDOUT_FRACTION", "0.3")
    from mlops_core.settings import get_settings

    get_settings.cache_clear()
    shown = json.loads(runner.invoke(app, ["settings", "--json"]).output)
    assert shown["training"]["holdout_fraction"] == 0.3
    assert shown["state_dir"] == str(settings.state_dir)


def test_the_readmes_cheap_commands_run_as_written(settings, tmp_path):
    """The everyday commands that need no server and no model run as the README writes them (the others are run
    by the end-to-end tests of their flows, the stack and the service)."""
    from tests.unit.test_readme import README, mlops_commands

    cheap = {("settings",), ("history",), ("data", "generate")}
    ran = []
    for args in mlops_commands(README.read_text()):
        if tuple(args[:2]) in cheap or tuple(args[:1]) in cheap:
            args = [str(tmp_path / "out") if arg == "/tmp/drifted" else arg for arg in args]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"mlops {' '.join(args)}: {result.output}"
            ran.append(args[0])
    assert sorted(ran) == ["data", "history", "settings"]
    assert len(list((tmp_path / "out").glob("*.parquet"))) == 30


@pytest.mark.slow
def test_demo_on_a_fresh_state_directory_registers_version_1(tmp_path, gx_context):
    """The README's main job as a user runs it: a new process, no server, the temporary Prefect server."""
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(tmp_path / "state"),
        "MLOPS_VALIDATION__CONTEXT_DIR": str(gx_context),
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    mlops = Path(sys.executable).with_name("mlops")
    done = subprocess.run(
        [str(mlops), "demo", "--rows", "20000", "--days", "5"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "registered loan-default version 1 (semver 1.0.0)" in done.stdout
    assert (tmp_path / "state" / "prefect").is_dir()  # Prefect's database stayed in the state directory
    from mlops_core.settings import Settings

    settings = Settings(state_dir=tmp_path / "state")
    versions = registry.model_versions(registry.connect(settings), "loan-default")
    assert [int(v.version) for v in versions] == [1]
    assert len(list((tmp_path / "state" / "data" / "loan_default").glob("*.parquet"))) == 5
