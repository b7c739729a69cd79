"""The blue-green manifests validate offline against the Kubernetes schemas, and the switch moves the selector."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from mlops_core.settings import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy" / "k8s"
VERSION = "1.33"


def load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def switch_module():
    spec = importlib.util.spec_from_file_location("switch", K8S / "switch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validate(doc: dict) -> None:
    # Raises on any schema error; strict also refuses unknown fields. The returned version must be the one asked.
    assert kubernetes_validate.validate(doc, VERSION, strict=True) == VERSION


@pytest.mark.parametrize("name", ["deployment-blue.yaml", "deployment-green.yaml", "service.yaml"])
def test_manifests_are_valid_kubernetes(name):
    validate(load(name))


def test_strict_validation_catches_a_typo():
    broken = load("service.yaml")
    broken["spec"]["selectr"] = broken["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_each_colour_has_the_seed_resources_and_probes(colour):
    deployment = load(f"deployment-{colour}.yaml")
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"]
        == pod["metadata"]["labels"]
        == {
            "app": "mlops-prediction",
            "colour": colour,
        }
    )
    (container,) = pod["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "250m"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_switch_and_switch_back_select_one_colour():
    switch = switch_module()
    service = load("service.yaml")
    assert service["spec"]["selector"]["colour"] == "blue"
    green = switch.patched(service, switch.selector_patch(service, "green"))
    validate(green)
    assert green["spec"]["selector"] == {"app": "mlops-prediction", "colour": "green"}
    selected = [
        c
        for c in ("blue", "green")
        if load(f"deployment-{c}.yaml")["spec"]["template"]["metadata"]["labels"].items()
        >= green["spec"]["selector"].items()
    ]
    assert selected == ["green"]
    back = switch.patched(green, switch.selector_patch(green, "blue"))
    assert back == service
    with pytest.raises(ValueError):
        switch.selector_patch(service, "red")


def test_the_script_prints_the_kubectl_patch():
    out = subprocess.run(
        [sys.executable, str(K8S / "switch.py"), "green"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == (
        "kubectl patch service mlops-prediction --type merge "
        """-p '{"spec":{"selector":{"app":"mlops-prediction","colour":"green"}}}'"""
    )
