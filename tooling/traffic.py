"""Where the blue and green colours run and which one gets the traffic: the routers of the blue-green switch.

``KubernetesRouter`` pins a colour with ``kubectl set env`` and ``rollout status`` and routes by patching the
Service's selector (the manifests of ``deploy/k8s/``). ``LocalRouter`` runs each colour as a ``bentoml serve``
process on 127.0.0.1 and records the live one, with its URL, in ``<state>/stack/bluegreen.json``. Both answer
the same questions (``Router``), so the procedure in ``tooling/bluegreen.py`` does not know which it drives.
Kept apart from the procedure so that ``mlops bluegreen status|down`` start without loading the registry client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from mlops_core.settings import PROJECT_ROOT, ServiceSettings, Settings
from tooling import processes

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")
FIRST_COLOUR: Colour = "blue"  # goes live on the first switch, when no colour is live yet
REF_VARIABLE = "MLOPS_SERVICE__MODEL_REF"
CONTAINER = "service"  # the container of the colours' Deployments
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
POLL_SECONDS = 0.2
KUBECTL_SECONDS = 60  # one kubectl call other than `rollout status`
# Where kubectl finds a colour's pin in its Deployment and the live colour in the Service (jsonpath output).
PIN_PATH = f'{{.spec.template.spec.containers[?(@.name=="{CONTAINER}")].env[?(@.name=="{REF_VARIABLE}")].value}}'
LIVE_PATH = "{.spec.selector.colour}"


class SwitchError(RuntimeError):
    """A check failed or the request cannot be carried out; traffic and the alias are where they were."""


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def selector_patch(colour: str) -> dict[str, Any]:
    """The JSON merge patch that makes ``colour`` live: the Service's other selector labels stay."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    return {"spec": {"selector": {"colour": colour}}}


@dataclass
class Endpoint:
    """Where a colour answers, and (locally) how to tell that its process died."""

    url: str
    alive: Callable[[], bool] = lambda: True
    log: Path | None = None


class Router(Protocol):
    """Where the colours run and which one the traffic reaches."""

    kind: str
    workers: int  # distinct worker processes behind ``reach`` that must report ready

    def live(self) -> Colour | None: ...

    def pinned(self, colour: Colour) -> str | None:
        """The colour's model reference (a version number or an alias); None when it does not run at all."""

    def pin(self, colour: Colour, ref: str) -> None: ...

    def reach(self, colour: Colour) -> contextlib.AbstractContextManager[Endpoint]: ...

    def route(self, colour: Colour) -> None: ...


# -- routers ---------------------------------------------------------------------------------------------------


class LocalRouter:
    """The colours as ``bentoml serve`` processes on 127.0.0.1 beside the local stack, sharing its stores.

    Each colour has its own port (``MLOPS_BLUEGREEN__LOCAL_PORTS``), BentoML home and log under
    ``<state>/bluegreen/<colour>/``; the registry, keys, rate limits, logs and feature store are the state
    directory's, as for every instance of one service. The live colour and its URL are in
    ``<state>/stack/bluegreen.json`` (``mlops bluegreen status`` prints them).
    """

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.file = settings.stack_dir / "bluegreen.json"
        self.workers = settings.service.workers

    def _read(self) -> dict[str, Any]:
        if not self.file.exists():
            return {"live": None, "live_url": None, "colours": {}}
        return json.loads(self.file.read_text())

    def _write(self, state: dict[str, Any]) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(state, indent=2))

    def url(self, colour: Colour) -> str:
        return f"http://{HOST}:{self.settings.bluegreen.local_ports[colour]}"

    def colour_dir(self, colour: Colour) -> Path:
        return self.settings.state_dir / "bluegreen" / colour

    def _running(self, colour: Colour) -> dict[str, Any] | None:
        record = self._read()["colours"].get(colour)
        return record if record and processes.is_alive(record["pid"], record["create_time"]) else None

    def live(self) -> Colour | None:
        return self._read()["live"]

    def pinned(self, colour: Colour) -> str | None:
        record = self._running(colour)
        return record["ref"] if record else None

    def environment(self, colour: Colour, ref: str) -> dict[str, str]:
        settings, home = self.settings, self.colour_dir(colour)
        return {
            **os.environ,
            "MLOPS_STATE_DIR": str(settings.state_dir),
            "MLOPS_MLFLOW__TRACKING_URI": settings.tracking_uri,
            "MLOPS_MLFLOW__REGISTRY_URI": settings.registry_uri,
            "MLOPS_SERVICE__HOST": HOST,
            "MLOPS_SERVICE__PORT": str(settings.bluegreen.local_ports[colour]),
            REF_VARIABLE: ref,
            "BENTOML_HOME": str(home / "bentoml"),  # its metrics directory is per server
        }

    def pin(self, colour: Colour, ref: str) -> None:
        """(Re)start the colour serving ``ref``; returns once started (``wait_serving`` checks it)."""
        state = self._read()
        if record := self._running(colour):
            processes.stop_group(record["pid"], self.settings.stack.stop_timeout_seconds)
        port = self.settings.bluegreen.local_ports[colour]
        if processes.port_in_use(port, HOST):
            raise SwitchError(f"port {port} for {colour} on {HOST} is used by another program")
        log = self.colour_dir(colour) / "service.log"
        proc = processes.start(
            [str(BIN / "bentoml"), "serve", "services.service:PredictionService"],
            env=self.environment(colour, ref), cwd=PROJECT_ROOT, log=log,
        )  # fmt: skip
        record = {"pid": proc.pid, "create_time": processes.create_time(proc.pid), "ref": ref, "log": str(log)}
        state["colours"][colour] = record
        self._write(state)

    @contextlib.contextmanager
    def reach(self, colour: Colour) -> Iterator[Endpoint]:
        record = self._read()["colours"].get(colour)
        if record is None:
            raise SwitchError(f"{colour} has never been started here")
        yield Endpoint(
            self.url(colour), alive=lambda: processes.is_alive(record["pid"], record["create_time"]),
            log=Path(record["log"]),
        )  # fmt: skip

    def route(self, colour: Colour) -> None:
        state = self._read()
        state["live"], state["live_url"] = colour, self.url(colour)
        self._write(state)

    def status(self) -> dict[str, Any]:
        state = self._read()
        return {
            "live": state["live"],
            "live_url": state["live_url"],
            "colours": {c: {"url": self.url(c), "pinned": self.pinned(c)} for c in COLOURS},
        }

    def down(self) -> list[Colour]:
        """Stop both colours; the record of the live colour goes with them."""
        stopped: list[Colour] = []
        for colour in COLOURS:
            if record := self._running(colour):
                processes.stop_group(record["pid"], self.settings.stack.stop_timeout_seconds)
                stopped.append(colour)
        self.file.unlink(missing_ok=True)
        return stopped


class KubernetesRouter:
    """The Deployments ``<service>-blue|green`` and the Service ``<service>`` of ``deploy/k8s/``, through kubectl.

    Checks reach a colour through its preview Service (``<service>-<colour>``) with ``kubectl port-forward``,
    which lands on one pod, whose every worker (``MLOPS_SERVICE__WORKERS``, as in the manifests) must report the
    pin. The other pods: ``rollout status`` has waited for their readiness probes, and a pinned worker answers
    ready only once it serves its pin (the probe reaches one worker of a pod per call).
    """

    kind = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        self.workers = settings.service.workers
        self.settings = settings.bluegreen
        self.service = settings.bluegreen.service_name

    def command(self, *args: str) -> list[str]:
        namespace = ["--namespace", self.settings.namespace] if self.settings.namespace else []
        return [self.settings.kubectl, *namespace, *args]

    def _run(self, command: list[str], timeout: float = KUBECTL_SECONDS) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise SwitchError(f"{self.settings.kubectl} not found (MLOPS_BLUEGREEN__KUBECTL)") from exc
        except subprocess.TimeoutExpired as exc:
            raise SwitchError(f"{shlex.join(command)} did not finish within {timeout:.0f} s") from exc
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise SwitchError(f"{shlex.join(command)} failed: {lines[-1]}")
        return result.stdout.strip()

    def deployment(self, colour: Colour) -> str:
        return f"{self.service}-{colour}"

    def pinned(self, colour: Colour) -> str | None:
        command = self.command("get", "deployment", self.deployment(colour), "-o", f"jsonpath={PIN_PATH}")
        return self._run(command) or ServiceSettings.model_fields["model_ref"].default  # unset: the default alias

    def live(self) -> Colour | None:
        colour = self._run(self.command("get", "service", self.service, "-o", f"jsonpath={LIVE_PATH}"))
        return colour if colour in COLOURS else None

    def pin_commands(self, colour: Colour, ref: str) -> list[list[str]]:
        deployment = f"deployment/{self.deployment(colour)}"
        timeout = f"--timeout={self.settings.ready_timeout_seconds:.0f}s"
        return [
            self.command("set", "env", deployment, "-c", CONTAINER, f"{REF_VARIABLE}={ref}"),
            self.command("rollout", "status", deployment, timeout),
        ]

    def pin(self, colour: Colour, ref: str) -> None:
        set_env, rollout = self.pin_commands(colour, ref)
        self._run(set_env)
        self._run(rollout, timeout=self.settings.ready_timeout_seconds + KUBECTL_SECONDS)

    def route_command(self, colour: Colour) -> list[str]:
        patch = json.dumps(selector_patch(colour), separators=(",", ":"))
        return self.command("patch", "service", self.service, "--type", "merge", "-p", patch)

    def route(self, colour: Colour) -> None:
        self._run(self.route_command(colour))

    @contextlib.contextmanager
    def reach(self, colour: Colour) -> Iterator[Endpoint]:
        port = processes.free_port()
        forward = subprocess.Popen(
            self.command("port-forward", f"service/{self.deployment(colour)}", f"{port}:http", "--address", HOST),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + KUBECTL_SECONDS
            while not processes.port_in_use(port, HOST):
                if forward.poll() is not None or time.monotonic() > deadline:
                    raise SwitchError(f"kubectl port-forward to {colour} failed: {_stderr(forward)}")
                time.sleep(POLL_SECONDS)
            yield Endpoint(f"http://{HOST}:{port}", alive=lambda: forward.poll() is None)
        finally:
            forward.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                forward.wait(5)


def _stderr(process: subprocess.Popen) -> str:
    if process.poll() is None:
        return "not listening yet"
    lines = (process.stderr.read() if process.stderr else "").strip().splitlines()
    return lines[-1] if lines else f"exited with code {process.returncode}"


def router_for(settings: Settings) -> LocalRouter | KubernetesRouter:
    return KubernetesRouter(settings) if settings.bluegreen.router == "kubernetes" else LocalRouter(settings)
