"""What the image tests share: uv (the tool that installs the images' environments) and a clean environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlops_core.settings import PROJECT_ROOT

VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin"
# Nothing of the project's own environment may leak into a process that stands for an image.
LEAKING_PREFIXES = ("MLOPS_", "PREFECT_", "BENTOML_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV")


@pytest.fixture(scope="session")
def uv() -> Path:
    """uv on the PATH, or where scripts/setup.sh installs it when it is not."""
    found = shutil.which("uv") or shutil.which("uv", path=str(PROJECT_ROOT / ".tools" / "bin"))
    assert found, "uv is needed to install the images' environments: source scripts/setup.sh"
    return Path(found)


def image_environment(bin_dir: Path, **settings: str) -> dict[str, str]:
    """The process environment of an image: its own ``bin`` first on the PATH, the project's venv not on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKING_PREFIXES)}
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if Path(entry) != VENV_BIN]
    env["PATH"] = os.pathsep.join([str(bin_dir), *path])
    env.update({"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "true"})
    env.update(settings)
    return env
