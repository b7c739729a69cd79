"""Probe rows on which a compiled pipeline must give scikit-learn's probabilities before it serves.

Random rows across each field's range find few of the places where a compiled model can part from
scikit-learn, so the probes also hold, as ``check_row`` passes them on:

- a missing value in every column, one at a time and all at once;
- an unseen category in every text column;
- every number at its allowed range's ends (the training range with its headroom), beyond them, and far beyond;
- for tree ensembles, rows routed to split nodes of every tree (its first split on an input column, and more
  drawn at random within about ``TREE_PROBE_ROWS``): with the split's value exactly at its threshold (an
  imputed median often is one), just past it, and missing (the node's missing-value branch when the
  pipeline hands NaN to the trees, the imputed value otherwise). The path to a node is followed on the
  numeric input columns the trees split on directly; other features (indicators, one-hot columns) follow from
  the row's base values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from services.inputs import FieldRule

RANDOM_PROBE_ROWS = 500
TREE_PROBE_ROWS = 3000
UNSEEN_CATEGORY = "never-seen-in-training"
# How far "just past a threshold" is, relative to it: well beyond float32 rounding (6e-8), still next to it.
PAST_THRESHOLD = 1e-6
# "Far beyond" the allowed range, in widths of that range.
FAR_BEYOND = 100.0


@dataclass(frozen=True)
class _Tree:
    """One decision tree as parallel arrays, whichever estimator grew it (a leaf has ``left == -1``)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray


def _trees(estimator: Any) -> list[_Tree]:
    """The trees of a random forest, a decision tree or a histogram gradient boosting model; none otherwise."""
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting*
        found = []
        for iteration in estimator._predictors:
            for predictor in iteration:
                nodes = predictor.nodes
                leaf = nodes["is_leaf"].astype(bool)
                found.append(
                    _Tree(
                        nodes["feature_idx"].astype(np.int64),
                        nodes["num_threshold"].astype(np.float64),
                        np.where(leaf, -1, nodes["left"].astype(np.int64)),
                        np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    )
                )
        return found
    fitted = getattr(estimator, "estimators_", None)
    fitted = [estimator] if hasattr(estimator, "tree_") else fitted
    if not isinstance(fitted, list) or not all(hasattr(e, "tree_") for e in fitted):
        return []
    return [_Tree(e.tree_.feature, e.tree_.threshold, e.tree_.children_left, e.tree_.children_right) for e in fitted]


def _range(rule: FieldRule) -> tuple[float, float]:
    low = rule.low if rule.low is not None else -1e3
    high = rule.high if rule.high is not None else 1e3
    return low, high


def _random_rows(rules: list[FieldRule], count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Values across each field's range, about 10 % missing, some unseen text."""
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for rule in rules:
        missing = (rng.random(count) < 0.1) & (not rule.required)
        if rule.kind == "string":
            known = sorted(rule.categories or ["a", "b"])
            choices = rng.choice([*known, UNSEEN_CATEGORY], size=count)
            values: list[Any] = [None if m else str(v) for v, m in zip(choices, missing, strict=True)]
        else:
            low, high = _range(rule)
            numbers = rng.uniform(low, high, size=count)
            numbers = np.round(numbers) if rule.kind == "integer" else numbers
            values = [float("nan") if m else float(v) for v, m in zip(numbers, missing, strict=True)]
        for row, value in zip(rows, values, strict=True):
            row[rule.name] = value
    return rows


def _missing(rule: FieldRule) -> Any:
    return None if rule.kind == "string" else float("nan")


def _edge_rows(rules: list[FieldRule], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Missing in every column, unseen in every text column, every number at, beyond and far beyond its range."""
    rows = [{**base, rule.name: _missing(rule)} for rule in rules]
    rows.append({rule.name: _missing(rule) for rule in rules})
    text = [rule for rule in rules if rule.kind == "string"]
    rows += [{**base, rule.name: UNSEEN_CATEGORY} for rule in text]
    rows.append({**base, **{rule.name: UNSEEN_CATEGORY for rule in text}})
    for rule in rules:
        if rule.kind == "string":
            continue
        low, high = _range(rule)
        width = max(high - low, 1.0)
        for value in (low, high, low - width, high + width, low - FAR_BEYOND * width, high + FAR_BEYOND * width):
            rows.append({**base, rule.name: float(np.round(value)) if rule.kind == "integer" else float(value)})
    return rows


def _parents(tree: _Tree) -> np.ndarray:
    parent = np.full(len(tree.left), -1)
    splits = np.nonzero(tree.left >= 0)[0]
    parent[tree.left[splits]] = splits
    parent[tree.right[splits]] = splits
    return parent


def _path_bounds(tree: _Tree, parent: np.ndarray, node: int, columns: dict[int, str]) -> dict[str, tuple[float, float]]:
    """The bounds (low, high] that the splits above ``node`` put on each input column to reach it."""
    bounds: dict[str, tuple[float, float]] = {}
    child, above = node, int(parent[node])
    while above >= 0:
        column = columns.get(int(tree.feature[above]))
        if column is not None:
            low, high = bounds.get(column, (-np.inf, np.inf))
            threshold = float(tree.threshold[above])
            if child == tree.left[above]:
                bounds[column] = (low, min(high, threshold))
            else:
                bounds[column] = (max(low, threshold), high)
        child, above = above, int(parent[above])
    return bounds


def _tree_rows(
    trees: list[_Tree], columns: dict[int, str], base: dict[str, Any], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Rows reaching split nodes on input columns, each at the threshold, just past it and missing: in every
    tree its first such node (the root, mostly), and further nodes drawn at random within the budget."""
    rows_per_node = 3
    per_tree = max(1, TREE_PROBE_ROWS // rows_per_node // max(len(trees), 1))
    rows = []
    for tree in trees:
        known = np.isin(tree.feature, list(columns)) & (tree.left >= 0)
        nodes = np.nonzero(known)[0]
        if len(nodes) > per_tree:
            nodes = np.concatenate([nodes[:1], rng.choice(nodes[1:], size=per_tree - 1, replace=False)])
        parent = _parents(tree)
        for node in nodes:
            bounds = _path_bounds(tree, parent, int(node), columns)
            on_path = {column: _inside(low, high) for column, (low, high) in bounds.items()}
            column = columns[int(tree.feature[node])]
            threshold = float(tree.threshold[node])
            for value in (threshold, threshold + max(abs(threshold), 1.0) * PAST_THRESHOLD, float("nan")):
                if not np.isinf(value):
                    rows.append({**base, **on_path, column: value})
    return rows


def _inside(low: float, high: float) -> float:
    """A value in (low, high]: its upper end when it has one (a threshold's own value goes left)."""
    if np.isfinite(high):
        return high
    return low + max(abs(low), 1.0) if np.isfinite(low) else 0.0


def probe_rows(pipeline: Any, rules: list[FieldRule], seed: int = 0) -> list[dict[str, Any]]:
    """All probe rows for ``pipeline``, as ``check_row`` passes them on (a missing number NaN, missing text None)."""
    rng = np.random.default_rng(seed)
    rows = _random_rows(rules, RANDOM_PROBE_ROWS, rng)
    base = rows[0] | {rule.name: _range(rule)[0] for rule in rules if rule.kind != "string"}
    rows += _edge_rows(rules, base)
    names = {rule.name for rule in rules if rule.kind != "string"}
    try:
        features = list(pipeline[:-1].get_feature_names_out())
    except (AttributeError, TypeError, ValueError):  # a pipeline that cannot name its features: no tree probes
        features = []
    # A tree feature named as a numeric input column is that column (imputed), unless a scaler changed it.
    columns = {i: name for i, name in enumerate(features) if name in names}
    rows += _tree_rows(_trees(pipeline[-1]), columns, base, rng)
    return rows
