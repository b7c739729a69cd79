"""The served models: the champion and the challenger aliases, each loaded, checked, then swapped in atomically.

Each worker process polls the registry in a background thread; one call returns both aliases and the serving
mode (tags on the registered model, see ``registry.ServingMode``). A new version is downloaded and loaded beside
the one serving, must answer its own input example with finite probabilities, and only then replaces the
reference that request handlers read (one assignment: in-flight requests finish on the model they started
with). A version that fails is remembered and not retried until the alias moves again. When the registry
cannot be reached the loaded models keep serving and the status says why. The challenger is loaded only while
the mode uses it, before the mode that needs it is published, so a switch never finds it missing. A starting
worker takes connections only once a poll has loaded the champion or found none to load (``wait_until_settled``).

What answers as champion is ``settings.service.model_ref``: the ``champion`` alias by default, another alias, or
a version number. A pinned version is served exactly and never replaced by an alias move, which is how a
blue-green colour stages a version before traffic reaches it (``tooling/bluegreen.py``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from mlops_core import registry
from mlops_core.profile import DatasetProfile
from mlops_core.settings import Settings
from services import estimator_onnx, linear_model, onnx_model
from services.compiled import Compiled, NotConvertible, Uncompiled
from services.inputs import Columns, FieldRule, build_rules, columns_of, frame_of_columns

EXAMPLE_ROWS = 2  # rows of the input example shown in the OpenAPI document (one for /predict, both for a batch)

logger = logging.getLogger("mlops.service.models")


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    semver: str
    pipeline: Any
    rules: list[FieldRule]
    classes: list[Any]
    loaded_at: datetime
    compiled: Compiled | None = None
    runtime: str = "scikit-learn"  # what scores the rows, and why not a compiled form when it is not
    example: list[dict[str, Any]] = field(default_factory=list)  # input example rows, JSON-ready, for the docs

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        return self.predict_columns(columns_of(rows, self.rules))

    def predict_columns(self, columns: Columns) -> np.ndarray:
        if self.compiled is not None:
            try:
                return self.compiled.predict_columns(columns)
            except Uncompiled:
                pass
        return self.pipeline.predict_proba(frame_of_columns(columns, self.rules))


@dataclass
class Slot:
    """One alias and the version of it this worker serves."""

    alias: str
    current: ServedModel | None = None
    refused: dict[int, str] = field(default_factory=dict)
    missing: bool = False


@dataclass
class Status:
    """What /readyz reports: ready, degraded (serving, but something is wrong) or not ready, with reasons."""

    registry_ok: bool = True
    registry_error: str | None = None
    last_poll: datetime | None = None


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def runtime_for(pipeline: Any, rules: list[FieldRule], wanted: str) -> tuple[Compiled | None, str]:
    """A compiled form when wanted and the pipeline compiles with the same answers, else scikit-learn (and why):
    a linear model as its float64 sum of terms (``services.linear_model``), any other through ONNX Runtime, the
    estimator alone on features made in numpy where the preprocessing is per column (``services.estimator_onnx``),
    else the whole pipeline's graph (``services.onnx_model``)."""
    if wanted != "onnx":
        return None, "scikit-learn (by settings)"
    try:
        return linear_model.checked(pipeline, rules), linear_model.RUNTIME
    except NotConvertible as linear_refused:
        logger.debug("not served by the linear form: %s", linear_refused)
    try:
        return estimator_onnx.checked(pipeline, rules), estimator_onnx.RUNTIME
    except NotConvertible as estimator_refused:
        logger.debug("not served by the estimator's graph on numpy features: %s", estimator_refused)
    try:
        return onnx_model.checked(pipeline, rules), onnx_model.RUNTIME
    except NotConvertible as exc:
        logger.warning("serving with scikit-learn: %s", exc)
        return None, f"scikit-learn ({exc})"[:300]


def load_version(
    client: mlflow.MlflowClient, name: str, version: int, headroom: float, wanted_runtime: str = "onnx"
) -> ServedModel:
    """Download, load and check one registered version; raises with the reason when it cannot serve."""
    semver = client.get_model_version(name, str(version)).tags.get(registry.TAG_SEMVER, "")
    with tempfile.TemporaryDirectory(prefix=f"model-{version}-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        pipeline = mlflow.sklearn.load_model(local)
        meta = Model.load(local)
        example = meta.load_input_example(local)
        profile_file = registry.model_profile_path(Path(local))
        profile = DatasetProfile.model_validate_json(profile_file.read_text()) if profile_file.exists() else None
    rules = build_rules(meta.signature, profile, headroom)
    compiled, runtime = runtime_for(pipeline, rules, wanted_runtime)
    if example is None:
        raise ValueError("the model has no input example to check it on")
    example = example[[r.name for r in rules]]
    model = ServedModel(
        name=name,
        version=version,
        semver=semver,
        pipeline=pipeline,
        rules=rules,
        classes=[_native(c) for c in pipeline.classes_],
        loaded_at=datetime.now(UTC),
        compiled=compiled,
        runtime=runtime,
        # Through pandas' JSON writer: NaN becomes null and numpy scalars plain numbers, as a client sends them.
        example=json.loads(example.head(EXAMPLE_ROWS).to_json(orient="records")),
    )
    rows = example.to_dict(orient="records")
    probabilities = model.predict_proba(rows)
    if probabilities.shape != (len(rows), len(model.classes)) or not np.isfinite(probabilities).all():
        raise ValueError(f"the model answered its input example with {probabilities!r}")
    return model


class ModelHolder:
    """The live models and serving mode of one worker, and the thread that keeps them in step with the registry."""

    def __init__(self, settings: Settings, reload_signal: Path) -> None:
        self._settings = settings
        self._reload_signal = reload_signal
        self.champion = Slot(registry.CHAMPION)
        self.challenger = Slot(registry.CHALLENGER)
        self.mode = registry.ServingMode.from_tags({}, settings.experiment)
        self.on_change: Callable[[ServedModel], None] | None = None
        self.status = Status()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._settled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-poller", daemon=True)

    @property
    def current(self) -> ServedModel | None:
        """The champion: what answers every request the challenger does not."""
        return self.champion.current

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wait_until_settled(self, timeout: float) -> bool:
        """Block until the champion is loaded or the registry has said that none can be (no alias, a refused
        version); an unreachable registry is retried at the poll interval meanwhile. False after ``timeout``."""
        return self._settled.wait(timeout)

    def request_reload(self) -> None:
        """Check now in this worker, and tell the other workers through the shared signal file."""
        self._reload_signal.parent.mkdir(parents=True, exist_ok=True)
        self._reload_signal.touch()
        self._wake.set()

    def _wanted(self, aliases: dict[str, int]) -> int | None:
        """The version the champion slot must serve: the pinned number, or where the followed alias points."""
        ref = self._settings.service.model_ref
        return int(ref) if ref.isdigit() else aliases.get(ref)

    def readiness(self) -> tuple[str, list[str]]:
        reasons = []
        champion = self.champion
        ref = self._settings.service.model_ref
        if champion.current is None:
            if not self.status.registry_ok:
                reasons.append(f"registry unreachable: {self.status.registry_error}")
            elif champion.missing:
                reasons.append(f"model {self._settings.mlflow.registered_model!r} has no {ref!r} alias")
            elif self.status.last_poll is None:
                reasons.append("loading the champion model")
            reasons.extend(f"version {v} refused: {why}" for v, why in champion.refused.items())
            return "not_ready", reasons or ["no model loaded"]
        if not self.status.registry_ok:
            reasons.append(f"registry unreachable, serving the loaded model: {self.status.registry_error}")
        if champion.missing:
            reasons.append(f"the {ref!r} alias is gone, serving the loaded model")
        reasons.extend(f"version {v} refused, serving the loaded model: {why}" for v, why in champion.refused.items())
        if self.mode.mode != "champion" and self.challenger.current is None:
            why = "; ".join(f"version {v} refused: {r}" for v, r in self.challenger.refused.items()) or "no alias"
            reasons.append(f"mode {self.mode.mode} without a challenger ({why}): the champion answers everything")
        return ("degraded" if reasons else "ready"), reasons

    def _signal_mtime(self) -> float:
        try:
            return self._reload_signal.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _run(self) -> None:
        seen_signal = self._signal_mtime()
        next_poll = 0.0
        while not self._stop.is_set():
            signal = self._signal_mtime()
            if time.monotonic() >= next_poll or signal != seen_signal or self._wake.is_set():
                self._wake.clear()
                seen_signal = signal
                self.poll_once()
                next_poll = time.monotonic() + self._settings.service.poll_seconds
                champion = self.champion
                if champion.current is not None or champion.missing or champion.refused:
                    self._settled.set()
            self._wake.wait(0.5)

    def poll_once(self) -> None:
        name = self._settings.mlflow.registered_model
        try:
            client = registry.connect(self._settings)
            model = client.get_registered_model(name)  # both aliases and the mode's tags in one call
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                self._mark_registry(ok=True)
                self.champion.missing = True
            else:
                self._mark_registry(ok=False, error=exc)
            return
        except Exception as exc:  # connection refused, timeouts, a locked or missing database file
            self._mark_registry(ok=False, error=exc)
            return
        self._mark_registry(ok=True)
        aliases = {alias: int(version) for alias, version in model.aliases.items()}
        mode = registry.ServingMode.from_tags(model.tags, self._settings.experiment)
        self._follow(client, self.champion, self._wanted(aliases))
        if mode.mode == "champion":
            self.challenger.current = None  # not needed: free its memory
            self.challenger.refused = {}
        else:
            self._follow(client, self.challenger, aliases.get(registry.CHALLENGER))
        self.mode = mode

    def _follow(self, client: mlflow.MlflowClient, slot: Slot, version: int | None) -> None:
        """Load the version ``slot``'s alias points to, unless already served or refused."""
        name = self._settings.mlflow.registered_model
        slot.missing = version is None
        if version is None:
            if slot is self.challenger:
                slot.current = None  # a retired challenger stops serving at once; a champion keeps serving
            return
        current = slot.current
        if version in slot.refused:
            return
        slot.refused = {}  # the alias moved: earlier refusals no longer concern what is wanted
        if current is not None and current.version == version:
            return
        try:
            service = self._settings.service
            model = load_version(client, name, version, service.range_headroom, service.model_runtime)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:500]
            logger.error("refused %s version %s as %s: %s", name, version, slot.alias, reason)
            slot.refused[version] = reason
            if self._is_unreachable(exc):
                slot.refused.pop(version)  # not the version's fault: retry at the next poll
                self._mark_registry(ok=False, error=exc)
            return
        slot.current = model
        if slot is self.champion and self.on_change is not None:
            self.on_change(model)
        logger.info(
            "serving %s version %s (%s) as %s with %s%s",
            name,
            version,
            model.semver,
            slot.alias,
            model.runtime,
            f", replacing version {current.version}" if current else "",
        )

    @staticmethod
    def _is_unreachable(exc: Exception) -> bool:
        text = f"{type(exc).__name__} {exc}".lower()
        return any(s in text for s in ("connection", "timed out", "max retries", "unable to open database"))

    def _mark_registry(self, *, ok: bool, error: Exception | None = None) -> None:
        self.status.last_poll = datetime.now(UTC)
        self.status.registry_ok = ok
        self.status.registry_error = None if ok else f"{type(error).__name__}: {error}"[:300]
        if not ok:
            logger.warning("registry check failed: %s", self.status.registry_error)
