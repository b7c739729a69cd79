"""Blue-green switch: the patch that points the Service's selector at the other colour, and switch-back.

``python deploy/k8s/switch.py green`` prints the ``kubectl patch`` command (and ``--apply`` runs it where kubectl
exists); ``python deploy/k8s/switch.py blue`` switches back. Only the selector changes, so the old colour keeps
running and switching back is instant. The colour switched to must be ready first (``kubectl rollout status``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path

import yaml

SERVICE_FILE = Path(__file__).with_name("service.yaml")
COLOURS = ("blue", "green")


def selector_patch(service: dict, colour: str) -> dict:
    """A JSON merge patch that keeps the selector's other labels and sets the live colour."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    return {"spec": {"selector": {**service["spec"]["selector"], "colour": colour}}}


def patched(service: dict, patch: dict) -> dict:
    """The Service as it is after the merge patch (what the API server would store)."""
    return {**service, "spec": {**service["spec"], "selector": patch["spec"]["selector"]}}


def kubectl_command(service: dict, patch: dict) -> list[str]:
    name = service["metadata"]["name"]
    return ["kubectl", "patch", "service", name, "--type", "merge", "-p", json.dumps(patch, separators=(",", ":"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("colour", choices=COLOURS, help="the colour to make live")
    parser.add_argument("--service-file", type=Path, default=SERVICE_FILE)
    parser.add_argument("--apply", action="store_true", help="run kubectl instead of printing the command")
    args = parser.parse_args()
    service = yaml.safe_load(args.service_file.read_text())
    command = kubectl_command(service, selector_patch(service, args.colour))
    if args.apply:
        subprocess.run(command, check=True)
    else:
        print(shlex.join(command))


if __name__ == "__main__":
    main()
