"""The model card's pure parts: segment metrics, known limitations, the card and the version's description."""

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from stages.promotion.statistics import metric_intervals, weighted_metric
from stages.training.model_card import (
    MIN_SEGMENT_ROWS,
    MISSING_SEGMENT,
    OTHER_SEGMENT,
    MetricInterval,
    ModelCard,
    SegmentMetrics,
    known_limitations,
    model_card_markdown,
    segment_metrics,
    training_window,
    version_description,
)

RNG = np.random.default_rng(7)


def _rows(levels: list, n: int) -> pd.DataFrame:
    return pd.DataFrame({"colour": pd.Series(np.resize(np.array(levels, dtype=object), n))})


@pytest.mark.parametrize(
    ("case", "levels", "max_segments", "expected"),
    [
        ("one level per segment, largest first", ["a", "a", "b"], 10, [("a", 400), ("b", 200)]),
        ("missing values are their own segment", ["a", None, "a"], 10, [("a", 400), (MISSING_SEGMENT, 200)]),
        (
            "rare levels are pooled last",
            ["a", "a", "a", "b", "c", "d"],
            2,
            [("a", 300), ("b", 100), (OTHER_SEGMENT, 200)],
        ),
        ("numbers as categories", [1, 2, 2], 10, [("2", 400), ("1", 200)]),
    ],
)
def test_segments(case, levels, max_segments, expected):
    rows = _rows(levels, 600)
    truth = RNG.integers(0, 2, 600)
    segments = segment_metrics(rows, truth, RNG.random(600), ["colour"], max_segments=max_segments)
    assert [(s.segment, s.rows) for s in segments] == expected, case
    assert all(s.column == "colour" for s in segments)


@pytest.mark.parametrize(
    ("case", "truth", "probability", "roc_auc", "brier", "positive_rate"),
    [
        ("perfect ranking", [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0, 0.025, 0.5),
        ("reversed ranking", [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0, 0.725, 0.5),
        ("one class: no AUC", [1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5], None, 0.25, 1.0),
    ],
)
def test_segment_values(case, truth, probability, roc_auc, brier, positive_rate):
    (segment,) = segment_metrics(_rows(["x"], 4), np.array(truth), np.array(probability), ["colour"])
    assert segment.roc_auc == (pytest.approx(roc_auc) if roc_auc is not None else None), case
    assert segment.brier == pytest.approx(brier)
    assert segment.positive_rate == pytest.approx(positive_rate)
    assert segment.mean_probability == pytest.approx(np.mean(probability))


def _segment(segment: str, rows: int, roc_auc: float | None) -> SegmentMetrics:
    return SegmentMetrics("channel", segment, rows, 0.2, 0.2, roc_auc, 0.15)


@pytest.mark.parametrize(
    ("case", "metrics", "segments", "present", "absent"),
    [
        (
            "calibrated, even",
            {"roc_auc": 0.80, "ece": 0.01},
            [_segment("web", 500, 0.79)],
            [],
            ["off by", "Weaker", "Too few"],
        ),
        ("miscalibrated", {"roc_auc": 0.80, "ece": 0.05}, [], ["off by 0.050"], ["Weaker"]),
        (
            "a weak segment",
            {"roc_auc": 0.80},
            [_segment("broker", 300, 0.70)],
            ["Weaker on channel = broker: ROC AUC 0.700"],
            [],
        ),
        (
            "a thin weak segment is only thin",
            {"roc_auc": 0.80},
            [_segment("post", 20, 0.5)],
            ["Too few holdout rows", "channel = post"],
            ["Weaker"],
        ),
        (
            "a one-class segment",
            {"roc_auc": 0.80},
            [_segment("fax", MIN_SEGMENT_ROWS, None)],
            [],
            ["Weaker", "Too few"],
        ),
    ],
)
def test_known_limitations(case, metrics, segments, present, absent):
    text = "\n".join(known_limitations("2026-11-01 to 2026-11-04", metrics, segments))
    assert "Learnt from 2026-11-01 to 2026-11-04 only" in text and "0.5 probability threshold" in text
    for phrase in present:
        assert phrase in text, (case, phrase)
    for phrase in absent:
        assert phrase not in text, (case, phrase)


@pytest.mark.parametrize(
    ("case", "files", "timestamp", "expected"),
    [
        (
            "dated batches",
            ["/d/2026-11-01.parquet", "/d/2026-11-04.parquet"],
            "ts",
            "2026-11-01 00:00 to 2026-11-04 12:30 (2 files, 2026-11-01.parquet to 2026-11-04.parquet)",
        ),
        ("one file without time stamps", ["/d/mine.csv"], None, "mine.csv"),
    ],
)
def test_training_window(case, files, timestamp, expected):
    frame = pd.DataFrame({"ts": [datetime(2026, 11, 1), datetime(2026, 11, 4, 12, 30)]})
    assert training_window(frame, files, timestamp) == expected, case


def _card(**changes) -> ModelCard:
    fields = dict(
        model="loan-default",
        version=3,
        semver="1.2.0",
        candidate="hist_gradient_boosting",
        target="defaulted",
        intended_use="Rank applications for review.",
        window="2026-11-01 to 2026-11-04",
        data_digest="ab" * 32,
        train_rows=3200,
        holdout_rows=800,
        split="temporal: newest 20% by application_ts",
        validation="suite 'loan_default': all 56 expectations passed",
        primary_metric="roc_auc",
        confidence=0.95,
        intervals={"roc_auc": MetricInterval(0.81, 0.78, 0.84)},
        point_metrics={"roc_auc": 0.81, "ece": 0.01},
        segments=[_segment("web", 500, 0.8)],
        gate_outcome="loan-default v3 (1.2.0) promoted to `champion`",
        gate_decision="# loan-default v3 (1.2.0) promoted to `champion`\n\n- Previous `champion`: 2",
        run_id="r1",
        limitations=["Learnt from the window only."],
    )
    return ModelCard(**{**fields, **changes})


@pytest.mark.parametrize(
    ("case", "card", "present"),
    [
        (
            "full card",
            _card(),
            [
                "# Model card: loan-default v3 (semver 1.2.0)",
                "## Intended use\n\nRank applications for review.",
                f"- Digest: `{'ab' * 32}`",
                "| roc_auc **(primary)** | 0.8100 | 0.7800 to 0.8400 |",
                "| ece (lower is better) | 0.0100 | n/a |",
                "| channel | web | 500 | 0.200 | 0.200 | 0.800 | 0.1500 |",
                "- Learnt from the window only.",
                "### loan-default v3 (1.2.0) promoted to `champion`",
            ],
        ),
        ("no categorical columns", _card(segments=[]), ["The data has no categorical columns."]),
        (
            "a thin, one-class segment",
            _card(segments=[_segment("fax", 5, None)]),
            ["| channel | fax (few rows) | 5 | 0.200 | 0.200 | n/a (one class) | 0.1500 |"],
        ),
    ],
)
def test_model_card_markdown(case, card, present):
    text = model_card_markdown(card)
    for line in present:
        assert line in text, (case, line)


def test_version_description_links_the_card_and_says_the_gate():
    text = version_description(_card(), "#/experiments/1/runs/r1/artifacts/model_card.md")
    assert "Holdout roc_auc: 0.8100 (95% interval 0.7800 to 0.8400)" in text
    assert "Gate: loan-default v3 (1.2.0) promoted to `champion`." in text
    assert f"`{'ab' * 6}`" in text
    assert "[Model card](#/experiments/1/runs/r1/artifacts/model_card.md)" in text


@pytest.mark.parametrize(
    ("case", "noise", "rows", "widest"),
    [("sharp, many rows", 0.5, 4000, 0.05), ("blurred, few rows", 2.0, 300, 0.25)],
)
def test_metric_intervals_cover_the_point_and_narrow_with_rows(case, noise, rows, widest):
    rng = np.random.default_rng(3)
    truth = (rng.random(rows) < 0.3).astype(int)
    probability = 1 / (1 + np.exp(-(truth * 2.0 - 1 + rng.normal(0, noise, rows))))
    intervals = metric_intervals(truth, probability, resamples=300, confidence=0.95, seed=1)
    ones = np.ones((1, rows))
    for metric, (lower, upper) in intervals.items():
        point = float(weighted_metric(metric, truth, probability, ones)[0])
        assert lower <= point <= upper, (case, metric)
    assert intervals["roc_auc"][1] - intervals["roc_auc"][0] < widest, case
