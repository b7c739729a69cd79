"""The images that ship, each run from an environment that holds only what the image installs.

The Bento is built into a temporary BENTOML_HOME; a fresh virtual environment gets the Bento's own requirements
file and nothing else, and serves the built Bento (``bentoml serve <tag>``) against a registry with a champion.
The flows' image: docker does not run here, so the COPY and ``uv`` steps of deploy/flows.Dockerfile are replayed
in a temporary directory, and a training run completes in the environment they produce.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.utils import canonicalize_name

from mlops_core import registry
from mlops_core.api_keys import KeyStore
from mlops_core.settings import PROJECT_ROOT, Settings
from stages.data.generator import generate_day
from tests.deploy.conftest import VENV_BIN, image_environment
from tests.service.conftest import stop_group, wait_until
from tests.service.training import register_model
from tooling.processes import free_port

pytestmark = pytest.mark.slow

BENTOFILE = PROJECT_ROOT / "deploy" / "bentofile.yaml"
FLOWS_DOCKERFILE = PROJECT_ROOT / "deploy" / "flows.Dockerfile"
PYTHON_VERSION = "3.11"  # the Python of both images (bentofile docker.python_version, the Dockerfile's base)
# Bytecode is compiled in the image for start-up time; it changes nothing that runs, and costs a minute here.
SKIP_BYTECODE = "--no-compile-bytecode"


def run(command: list, *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{shlex.join(map(str, command))}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


@dataclass
class BuiltBento:
    home: Path  # the BENTOML_HOME it is stored in
    path: Path
    tag: str


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory, uv: Path) -> BuiltBento:
    home = tmp_path_factory.mktemp("bentoml")
    # Offline: neither uv nor pip may fetch anything. BentoML 1.4 looks for uv even when it does not lock.
    env = image_environment(VENV_BIN, BENTOML_HOME=str(home), UV_OFFLINE="1", PIP_NO_INDEX="1")
    env["PATH"] = f"{env['PATH']}:{uv.parent}"
    run([VENV_BIN / "bentoml", "build", "-f", BENTOFILE, "."], cwd=PROJECT_ROOT, env=env, timeout=300)
    name = yaml.safe_load(BENTOFILE.read_text())["name"]
    (path,) = [p for p in (home / "bentos" / name).iterdir() if p.is_dir()]
    return BuiltBento(home, path, f"{name}:{path.name}")


def imported_modules(source: Path) -> set[str]:
    """Top-level names of every absolute import in a file, those inside functions included."""
    tree = ast.parse(source.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def required_distributions(requirements: Path) -> set[str]:
    return {canonicalize_name(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9._-]+)==", requirements.read_text(), re.M)}


def test_the_bento_holds_the_service_and_requirements_for_everything_it_imports(bento):
    source = bento.path / "src"
    files = {p.relative_to(source).as_posix(): p for p in source.rglob("*.py")}
    assert {
        "services/service.py",
        "services/onnx_model.py",
        "mlops_core/settings.py",
        "mlops_core/db.py",
        "feature_repo/definitions.py",
    } <= set(files)
    packaged = {name.split("/")[0] for name in files}
    assert packaged == {"services", "mlops_core", "feature_repo"}  # the service and what it may import
    provided = required_distributions(bento.path / "env" / "python" / "requirements.txt")
    # Which distribution provides a module, as installed in the project's environment (the same lock).
    distributions = importlib.metadata.packages_distributions()
    unprovided: dict[str, set[str]] = {}
    for name, path in files.items():
        for module in imported_modules(path) - sys.stdlib_module_names - packaged:
            if not {canonicalize_name(d) for d in distributions.get(module, [])} & provided:
                unprovided.setdefault(module, set()).add(name)
    assert not unprovided, f"imported by the Bento, installed by none of its requirements: {unprovided}"


def test_the_built_bento_serves_from_its_own_requirements(bento, uv, tmp_path):
    venv = tmp_path / "venv"
    requirements = bento.path / "env" / "python" / "requirements.txt"
    # Outside the project directory, so that uv does not apply the project's [tool.uv] settings.
    run([uv, "venv", "--quiet", "--python", PYTHON_VERSION, venv], cwd=tmp_path, timeout=120)
    install = [uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", "-r", requirements]
    run(install, cwd=tmp_path, timeout=600)
    # The project itself is not in that environment: whatever is served comes from the Bento.
    assert subprocess.run([venv / "bin" / "python", "-c", "import services"], cwd=tmp_path).returncode != 0

    settings = Settings(state_dir=tmp_path / "state")  # the embedded registry: SQLite file, local artifacts
    version = register_model(settings, tmp_path / "data", seed=1)
    registry.connect(settings).set_registered_model_alias(
        settings.mlflow.registered_model, registry.CHAMPION, str(version)
    )
    _, key = KeyStore(settings.key_store).create("image test")
    url = f"http://127.0.0.1:{free_port()}"
    env = image_environment(
        venv / "bin",
        BENTOML_HOME=str(bento.home),
        MLOPS_STATE_DIR=str(settings.state_dir),
        MLOPS_SERVICE__PORT=url.rsplit(":", 1)[1],
        MLOPS_SERVICE__WORKERS="1",
    )
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [venv / "bin" / "bentoml", "serve", bento.tag],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            ready = wait_until(
                lambda: (r := httpx.get(f"{url}/readyz", timeout=2)).status_code == 200 and r.json(), 180, "ready"
            )
        except TimeoutError:
            raise AssertionError(f"the Bento did not become ready; log:\n{log.read_text()[-4000:]}") from None
        assert ready["status"] == "ready"
        # The champion (a logistic regression) is scored by its compiled linear form; ONNX Runtime and skl2onnx,
        # which the hand-kept list used to miss, are imported by every worker (services.models) all the same.
        assert (ready["model"]["version"], ready["model"]["runtime"]) == (version, "linear")
        row = generate_day(date(2026, 11, 2), 1, seed=1).drop(columns=["defaulted", "applicant_id", "application_ts"])
        features = {k: (None if v != v else v) for k, v in row.to_dict(orient="records")[0].items()}
        answer = httpx.post(f"{url}/predict", json=features, headers={"X-API-Key": key}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
    finally:
        stop_group(server)


def dockerfile_steps(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of each step, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            steps.append((instruction.upper(), arguments.strip()))
    return steps


def test_the_flows_image_environment_runs_a_training(uv, tmp_path):
    steps = dockerfile_steps(FLOWS_DOCKERFILE)
    assert ("FROM", f"python:{PYTHON_VERSION}-slim") in steps
    (workdir,) = [arguments for instruction, arguments in steps if instruction == "WORKDIR"]
    app = tmp_path / workdir.lstrip("/")
    app.mkdir(parents=True)
    synced = 0
    for instruction, arguments in steps:
        if instruction == "COPY":
            *sources, destination = shlex.split(arguments)
            for source in sources:
                origin, target = PROJECT_ROOT / source, app / destination
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "uncommitted"))
                else:
                    shutil.copy2(origin, target / origin.name if destination.endswith("/") else target)
        elif instruction == "RUN" and arguments.startswith("uv "):
            command = [uv, *shlex.split(arguments)[1:], SKIP_BYTECODE, "--quiet"]
            run(command, cwd=app, env=image_environment(uv.parent, UV_PYTHON=PYTHON_VERSION), timeout=600)
            synced += 1
    assert synced, "the Dockerfile installs nothing with uv"

    state = tmp_path / "state"
    env = image_environment(
        app / ".venv" / "bin",
        MLOPS_STATE_DIR=str(state),
        PREFECT_HOME=str(tmp_path / "prefect"),
        MLOPS_TRAINING__CANDIDATES='["logistic_regression"]',
    )
    run([app / ".venv" / "bin" / "mlops", "demo", "--rows", "3000", "--days", "3"], cwd=app, env=env, timeout=600)
    settings = Settings(state_dir=state)
    champion = registry.connect(settings).get_model_version_by_alias(
        settings.mlflow.registered_model, registry.CHAMPION
    )
    assert int(champion.version) == 1
