"""The Kubernetes base job template renders, with Prefect's own templating, into the Job the README describes."""

from __future__ import annotations

import json

from prefect.utilities.templating import apply_values, find_placeholders

from mlops_core.settings import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "deploy" / "k8s" / "prefect-work-pool" / "base-job-template.json"


def test_every_placeholder_is_a_declared_variable():
    template = json.loads(TEMPLATE.read_text())
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    assert used <= set(template["variables"]["properties"])


def test_the_rendered_job_reads_settings_from_the_secret_and_data_from_the_claim():
    template = json.loads(TEMPLATE.read_text())
    defaults = {
        name: spec["default"] for name, spec in template["variables"]["properties"].items() if "default" in spec
    }
    job = apply_values(template["job_configuration"], defaults)["job_manifest"]  # what a worker fills in
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == "mlops"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "mlops-loop:latest"
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-env"}}]
    assert container["env"]["MLOPS_MLFLOW__TRACKING_URI"].startswith("http://mlflow.mlops.svc")
    assert {m["name"] for m in container["volumeMounts"]} == {v["name"] for v in pod["volumes"]}
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
