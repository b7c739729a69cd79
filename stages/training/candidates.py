"""Candidate pipelines and the holdout split: plain scikit-learn, no orchestration."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_core.settings import CandidateName, MetricName, Settings
from stages.data.loading import LoadedData
from stages.training.metrics import better, positive_truth, probability_metrics


class TrainingDataError(ValueError):
    """The data cannot train a binary classifier (for example, one class only)."""


@dataclass
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_holdout: pd.DataFrame
    y_holdout: pd.Series
    strategy: str

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.x_train.columns if _is_numeric(self.x_train[c])]

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c in self.x_train.columns if not _is_numeric(self.x_train[c])]


@dataclass
class Candidate:
    name: str
    pipeline: Pipeline
    params: dict[str, Any]
    fit_seconds: float
    metrics: dict[str, float] | None = None
    # Positive-class probabilities on the holdout rows, in their order: what the figures and the model card use.
    holdout_probability: np.ndarray | None = None


@dataclass
class CandidateRanking:
    """Every candidate scored on the same holdout, and the best of them by the primary metric."""

    candidates: list[Candidate]
    best: Candidate


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def split_holdout(
    frame: pd.DataFrame,
    *,
    features: list[str],
    target: str,
    holdout_fraction: float,
    timestamp: str | None,
    seed: int,
) -> Split:
    """Hold out the newest rows when the data is time-stamped (as production will score it), else a stratified sample."""
    y = frame[target]
    classes = y.nunique(dropna=True)
    if classes != 2:
        raise TrainingDataError(f"target {target!r} must have exactly 2 classes, found {classes}: {y.unique()[:10]}")
    if timestamp and timestamp in frame.columns:
        # Windows arrive in time order (loading sorts, the point-in-time join keeps the order): no sorted copy then.
        ordered = frame if frame[timestamp].is_monotonic_increasing else frame.sort_values(timestamp, kind="stable")
        cut = int(round(len(ordered) * (1 - holdout_fraction)))
        train, holdout = ordered.iloc[:cut], ordered.iloc[cut:]
        strategy = f"temporal: newest {holdout_fraction:.0%} by {timestamp}"
        if train[target].nunique() < 2 or holdout[target].nunique() < 2:
            raise TrainingDataError("the temporal split leaves one class on one side; add data or lower the fraction")
    else:
        train, holdout = train_test_split(frame, test_size=holdout_fraction, stratify=y, random_state=seed)
        strategy = f"stratified random {holdout_fraction:.0%}"
    return Split(
        x_train=train[features],
        y_train=train[target],
        x_holdout=holdout[features],
        y_holdout=holdout[target],
        strategy=strategy,
    )


def sample_for_fit(split: Split, max_rows: int | None, seed: int) -> Split:
    """The split with its training rows reduced to a random ``max_rows`` (kept in time order), the holdout whole.

    For windows whose full fit would not fit in time or memory; the strategy names the sample so the run records it.
    """
    if max_rows is None or len(split.x_train) <= max_rows:
        return split
    rows = np.sort(np.random.default_rng(seed).choice(len(split.x_train), size=max_rows, replace=False))
    return replace(
        split,
        x_train=split.x_train.iloc[rows],
        y_train=split.y_train.iloc[rows],
        strategy=f"{split.strategy}; fit on a random {max_rows:,} of {len(split.x_train):,} training rows",
    )


def training_split(data: LoadedData, settings: Settings) -> Split:
    """The split every training makes of its window: the newest rows held out, the fit rows sampled if configured."""
    split = split_holdout(
        data.frame,
        features=data.feature_columns,
        target=data.target,
        holdout_fraction=settings.training.holdout_fraction,
        timestamp=settings.data.timestamp,
        seed=settings.training.random_seed,
    )
    return sample_for_fit(split, settings.training.fit_sample_rows, settings.training.random_seed)


def _preprocessor(numeric: list[str], categorical: list[str], *, scale: bool) -> ColumnTransformer:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
        ("encode", OneHotEncoder(handle_unknown="ignore", min_frequency=0.001, sparse_output=False)),
    ]
    return ColumnTransformer(
        [("numeric", Pipeline(numeric_steps), numeric), ("categorical", Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,
    )


def _estimator(name: CandidateName, seed: int) -> Any:
    if name == "logistic_regression":
        return LogisticRegression(C=1.0, max_iter=1000)
    if name == "random_forest":
        # Bounded depth and per-tree samples keep a 1M-row fit in tens of seconds on 2 cores.
        return RandomForestClassifier(
            n_estimators=100, max_depth=12, min_samples_leaf=20, max_samples=0.25, n_jobs=1, random_state=seed
        )
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.08, early_stopping=True, validation_fraction=0.1, random_state=seed
        )
    raise ValueError(f"unknown candidate {name!r}")


def _scaled(name: CandidateName) -> bool:
    return name == "logistic_regression"


def build_candidate(name: CandidateName, split: Split, seed: int) -> Pipeline:
    """Preprocessing lives inside the pipeline, so the logged model takes raw feature columns."""
    return Pipeline(
        [
            ("preprocess", _preprocessor(split.numeric_columns, split.categorical_columns, scale=_scaled(name))),
            ("model", _estimator(name, seed)),
        ]
    )


@dataclass
class SharedPreprocessing:
    """The training rows through the unscaled preprocessor, transformed once for every candidate: the matrix the
    tree models' pipelines would compute themselves, and, with its numeric block scaled, the one logistic
    regression's would; so their fits and predictions are unchanged, while the window's dense one-hot matrix is
    computed once instead of once per fit."""

    preprocessor: ColumnTransformer
    x_train: np.ndarray


def shared_preprocessing(names: list[CandidateName], split: Split) -> SharedPreprocessing | None:
    """None when every candidate scales (logistic regression alone: its own pipeline holds one matrix, not two)."""
    if all(_scaled(name) for name in names):
        return None
    preprocessor = _preprocessor(split.numeric_columns, split.categorical_columns, scale=False)
    return SharedPreprocessing(preprocessor, preprocessor.fit_transform(split.x_train))


def fit_candidate(name: CandidateName, split: Split, seed: int, shared: SharedPreprocessing | None = None) -> Candidate:
    pipeline = build_candidate(name, split, seed)
    started = time.perf_counter()
    if shared is not None:
        preprocessor, x_train = copy.deepcopy(shared.preprocessor), shared.x_train
        if _scaled(name):
            x_train = _scale_numeric_block(preprocessor, x_train)
        pipeline.steps[0] = ("preprocess", preprocessor)
        pipeline.named_steps["model"].fit(x_train, split.y_train)
    else:
        pipeline.fit(split.x_train, split.y_train)
    params = {k: v for k, v in pipeline.named_steps["model"].get_params().items() if _loggable(v)}
    return Candidate(name=name, pipeline=pipeline, params=params, fit_seconds=time.perf_counter() - started)


def _scale_numeric_block(preprocessor: ColumnTransformer, x_train: np.ndarray) -> np.ndarray:
    """Turn a fitted copy of the shared (unscaled) preprocessor into the scaled one ``build_candidate`` makes, and
    return the training matrix through it: a scaler fitted on the numeric block (imputed values and missing-value
    indicators, laid out in columns as the imputer hands them to its own scaler) is appended to the
    numeric pipeline, fitted and unfitted alike, so the logged pipeline still takes raw columns."""
    block = preprocessor.output_indices_["numeric"]
    # In the imputer's column-major layout: the scaler's sums then run in the same order, to the last bit.
    scaler = StandardScaler().fit(np.asfortranarray(x_train[:, block]))
    preprocessor.named_transformers_["numeric"].steps.append(("scale", scaler))
    next(t for n, t, _ in preprocessor.transformers if n == "numeric").steps.append(("scale", StandardScaler()))
    scaled = x_train.copy()
    # What ``scaler.transform`` computes, element by element, in place: no second copy of the block.
    scaled[:, block] -= scaler.mean_
    scaled[:, block] /= scaler.scale_
    return scaled


def score_on_holdout(candidate: Candidate, split: Split) -> Candidate:
    """The candidate with its holdout metrics and the probabilities they come from."""
    probability = candidate.pipeline.predict_proba(split.x_holdout)[:, 1]
    metrics = probability_metrics(positive_truth(candidate.pipeline, split.y_holdout), probability)
    return replace(candidate, metrics=metrics, holdout_probability=probability)


def _loggable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def select_best(candidates: list[Candidate], metric: MetricName) -> Candidate:
    best = candidates[0]
    for candidate in candidates[1:]:
        if better(metric, candidate.metrics[metric], best.metrics[metric]):
            best = candidate
    return best
