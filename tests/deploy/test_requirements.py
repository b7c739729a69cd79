"""The images' Python environments come from uv.lock, never from a hand-kept list."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib

import yaml

from mlops_core.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
WORK_POOL_TEMPLATE = DEPLOY / "k8s" / "prefect-work-pool" / "base-job-template.json"


def test_the_committed_bento_requirements_are_what_the_lock_exports(uv):
    exported = subprocess.run(
        [str(DEPLOY / "export-requirements.sh")],
        env={**os.environ, "UV": str(uv)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    committed = (DEPLOY / "service-requirements.txt").read_text()
    assert committed == exported, "stale: run deploy/export-requirements.sh > deploy/service-requirements.txt"


def test_the_bentofile_installs_the_exported_requirements_only():
    python = yaml.safe_load((DEPLOY / "bentofile.yaml").read_text())["python"]
    assert python["requirements_txt"] == "deploy/service-requirements.txt"
    assert "packages" not in python  # BentoML would ignore them beside requirements_txt, silently
    assert python["lock_packages"] is False  # pinned by the lock already; locking again needs the network


def test_the_work_pool_runs_the_flows_image():
    dockerfile = (DEPLOY / "flows.Dockerfile").read_text()
    title = re.search(r'^LABEL org\.opencontainers\.image\.title="([^"]+)"$', dockerfile, re.MULTILINE).group(1)
    template = json.loads(WORK_POOL_TEMPLATE.read_text())
    image = template["variables"]["properties"]["image"]["default"]
    assert image.split(":")[0] == title


def test_the_flows_image_installs_with_the_uv_of_the_local_setup():
    setup = re.search(r'^UV_VERSION="([^"]+)"$', (PROJECT_ROOT / "scripts" / "setup.sh").read_text(), re.MULTILINE)
    assert f"uv=={setup.group(1)}" in (DEPLOY / "flows.Dockerfile").read_text()


def test_the_flows_image_holds_every_package_of_the_project():
    wheel = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    copied = set(re.findall(r"^COPY (\S+)/ ", (DEPLOY / "flows.Dockerfile").read_text(), re.MULTILINE))
    assert set(wheel["packages"]) <= copied
