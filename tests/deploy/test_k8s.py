"""The blue-green manifests: valid Kubernetes objects whose names agree with the build, the settings and the flows.

Schemas: Kubernetes 1.33, offline (kubernetes-validate, strict). The switch's own kubectl commands (``set env``
to pin a colour, ``patch`` to route) run with ``--local`` on the manifests when a kubectl is installed (Debian's
``kubernetes-client``), and the objects they print validate too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from mlops_core.settings import PROJECT_ROOT, Settings
from tooling.traffic import COLOURS, CONTAINER, LIVE_PATH, PIN_PATH, REF_VARIABLE, KubernetesRouter, selector_patch

K8S = PROJECT_ROOT / "deploy" / "k8s"
VERSION = "1.33"
MANIFESTS = ["deployment-blue.yaml", "deployment-green.yaml", "service.yaml", "service-preview.yaml"]
WORK_POOL = json.loads((K8S / "prefect-work-pool" / "base-job-template.json").read_text())
# Per-worker RSS measured with either champion loaded, under load (deploy/k8s/README.md).
MEASURED_WORKER_RSS_MIB = 452
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="no kubectl (Debian: apt-get install kubernetes-client)")


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def objects() -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for name in MANIFESTS for doc in documents(name)}


def deployment(colour: str) -> dict:
    return objects()[("Deployment", f"mlops-prediction-{colour}")]


def container(colour: str) -> dict:
    (only,) = deployment(colour)["spec"]["template"]["spec"]["containers"]
    return only


def env_of(colour: str) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(colour)["env"]}


def validate(doc: dict) -> None:
    # Raises on any schema error; strict also refuses unknown fields. The returned version must be the one asked.
    assert kubernetes_validate.validate(doc, VERSION, strict=True) == VERSION


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifests_are_valid_kubernetes(name):
    for doc in documents(name):
        validate(doc)


def test_strict_validation_catches_a_typo():
    (broken,) = documents("service.yaml")
    broken["spec"]["selectr"] = broken["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_names_agree_with_the_build_the_settings_and_the_work_pool():
    bento = yaml.safe_load((PROJECT_ROOT / "deploy" / "bentofile.yaml").read_text())
    pool_job = WORK_POOL["job_configuration"]["job_manifest"]
    pool_env = WORK_POOL["variables"]["properties"]["env"]["default"]
    pool_namespace = WORK_POOL["variables"]["properties"]["namespace"]["default"]
    defaults = Settings().bluegreen
    names = objects()
    assert {ns for (_, _), doc in names.items() for ns in [doc["metadata"]["namespace"]]} == {pool_namespace}
    assert defaults.namespace == pool_namespace
    assert ("Service", defaults.service_name) in names
    for colour in COLOURS:
        # The router's names: the colour's Deployment, its preview Service, the container it pins.
        assert ("Deployment", f"{defaults.service_name}-{colour}") in names
        preview = names[("Service", f"{defaults.service_name}-{colour}")]
        assert preview["spec"]["selector"]["colour"] == colour
        spec = container(colour)
        assert spec["name"] == CONTAINER
        repository, _, tag = spec["image"].rpartition(":")
        assert repository.rsplit("/", 1)[-1] == bento["name"] and tag  # what `bentoml containerize` tags
        # The flows read the shared stores' URLs from the same Secret, and must not run without it.
        pool_secrets = [
            source["secretRef"] for source in pool_job["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        ]
        assert [source["secretRef"] for source in spec["envFrom"]] == pool_secrets
        assert not any(ref.get("optional") for ref in pool_secrets)
        env = env_of(colour)
        assert env["MLOPS_MLFLOW__TRACKING_URI"] == pool_env["MLOPS_MLFLOW__TRACKING_URI"]
        assert REF_VARIABLE in env
        # Every variable is a setting the service reads: the settings object parses them into these values.
        read = Settings(**_nested(env))
        assert read.service.port == spec["ports"][0]["containerPort"]
        assert read.service.model_ref == env[REF_VARIABLE]
        assert read.service.workers == KubernetesRouter(Settings()).workers  # what the switch waits for per pod
        assert str(read.state_dir) == env["MLOPS_STATE_DIR"]
        assert {m["mountPath"] for m in spec["volumeMounts"]} == {env["MLOPS_STATE_DIR"]}


def test_the_secrets_documented_keys_are_settings():
    readme = (K8S / "README.md").read_text()
    documented = {
        "MLOPS_SERVICE__KEYS_URL", "MLOPS_SERVICE__PREDICTION_LOG_URL", "MLOPS_SERVICE__SECURITY_LOG_URL",
        "MLOPS_SERVICE__RATE_LIMIT_URL", "MLOPS_FEATURES__JOURNAL_URL", "MLOPS_PROMOTION__AUDIT_URL",
    }  # fmt: skip
    assert all(f"`{name}`" in readme for name in documented)
    _nested(dict.fromkeys(documented, "x"))


def _nested(env: dict[str, str]) -> dict:
    """``MLOPS_A__B=v`` as ``{"a": {"b": "v"}}``; a name that is no setting fails here (extra fields forbidden)."""
    values: dict = {}
    for name, value in env.items():
        assert name.startswith("MLOPS_"), name
        *parents, leaf = name.removeprefix("MLOPS_").lower().split("__")
        target, model = values, Settings
        for parent in parents:
            assert parent in model.model_fields, f"{name}: no setting {parent!r}"
            model = model.model_fields[parent].annotation
            target = target.setdefault(parent, {})
        assert leaf in model.model_fields, f"{name}: no setting {leaf!r}"
        target[leaf] = value
    return values


def test_services_reach_the_containers_named_port():
    for (kind, _), doc in objects().items():
        if kind == "Service":
            assert [p["targetPort"] for p in doc["spec"]["ports"]] == [container("blue")["ports"][0]["name"]]


@pytest.mark.parametrize("colour", COLOURS)
def test_each_colour_has_the_measured_resources_and_probes(colour):
    pod = deployment(colour)["spec"]["template"]
    assert deployment(colour)["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert pod["metadata"]["labels"] == {"app": "mlops-prediction", "colour": colour}
    spec = container(colour)
    assert spec["resources"] == container("blue")["resources"]
    assert spec["resources"] == {"requests": {"memory": "1Gi", "cpu": "1"}, "limits": {"memory": "1536Mi", "cpu": "2"}}
    workers = int(env_of(colour)["MLOPS_SERVICE__WORKERS"])
    limit_mib = int(spec["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert workers * MEASURED_WORKER_RSS_MIB * 1.5 <= limit_mib  # headroom over the workers alone
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/livez"
    # Liveness starts after the startup probe passed, which waits longer than a worker waits for its model.
    startup = spec["startupProbe"]
    assert startup["httpGet"]["path"] == "/livez"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * Settings().service.startup_load_seconds


def merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch, what the API server applies for ``kubectl patch --type merge``."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def selected(service: dict) -> list[str]:
    return [
        c
        for c in COLOURS
        if deployment(c)["spec"]["template"]["metadata"]["labels"].items() >= service["spec"]["selector"].items()
    ]


def test_the_route_patch_selects_one_colour_and_switches_back():
    (service,) = documents("service.yaml")
    assert selected(service) == ["blue"]
    green = merge_patch(service, selector_patch("green"))
    validate(green)
    assert selected(green) == ["green"]
    assert merge_patch(green, selector_patch("blue")) == service
    with pytest.raises(ValueError):
        selector_patch("red")


def test_the_router_commands():
    router = KubernetesRouter(Settings())
    set_env, rollout = router.pin_commands("green", "7")
    assert set_env == [
        "kubectl", "--namespace", "mlops", "set", "env", "deployment/mlops-prediction-green", "-c", "service",
        "MLOPS_SERVICE__MODEL_REF=7",
    ]  # fmt: skip
    assert rollout == [
        "kubectl", "--namespace", "mlops", "rollout", "status", "deployment/mlops-prediction-green", "--timeout=300s",
    ]  # fmt: skip
    assert router.route_command("green") == [
        "kubectl", "--namespace", "mlops", "patch", "service", "mlops-prediction", "--type", "merge",
        "-p", '{"spec":{"selector":{"colour":"green"}}}',
    ]  # fmt: skip


def kubectl_local(command: list[str], manifest: str) -> dict | str:
    """One of the router's commands, run by kubectl on a manifest file instead of a cluster: what it prints (the
    object as JSON, or the ``-o`` given after the command)."""
    words = [w for w in command[command.index("--namespace") + 2 :] if not w.startswith("deployment/")]
    if words[0] == "patch":
        del words[1:3]  # kind and name: the object comes from the file
    output = [] if "-o" in words else ["-o", "json"]
    args = [KUBECTL, *words, "--local", "-f", str(K8S / manifest), *output]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if output else result.stdout


@needs_kubectl
def test_kubectl_pins_a_colour_on_the_manifest():
    set_env, _ = KubernetesRouter(Settings()).pin_commands("green", "7")
    pinned = kubectl_local(set_env, "deployment-green.yaml")
    validate(pinned)
    (spec,) = pinned["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in spec["env"]}[REF_VARIABLE] == "7"
    # The router reads the pin back with this jsonpath.
    assert kubectl_local([*set_env, "-o", f"jsonpath={PIN_PATH}"], "deployment-green.yaml") == "7"


@needs_kubectl
def test_kubectl_patches_the_selector_as_the_merge_patch_says():
    (service,) = documents("service.yaml")
    route = KubernetesRouter(Settings()).route_command("green")
    routed = kubectl_local(route, "service.yaml")
    validate(routed)
    assert routed["spec"]["selector"] == merge_patch(service, selector_patch("green"))["spec"]["selector"]
    assert selected(routed) == ["green"]
    assert kubectl_local([*route, "-o", f"jsonpath={LIVE_PATH}"], "service.yaml") == "green"


def test_the_script_drives_the_cli_with_the_kubernetes_router():
    result = subprocess.run(
        [sys.executable, str(K8S / "switch.py"), "status"], capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "MLOPS_BLUEGREEN__KUBECTL": "kubectl-that-is-not-installed"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "error: kubectl-that-is-not-installed not found (MLOPS_BLUEGREEN__KUBECTL)"
