"""The drift rule's false-alarm rate and power, measured by simulation (an A/A test of the rule).

Reference and windows are independent samples of one population (the generated loan data, scikit-learn's
breast-cancer data), so every alert is false. The rule is the check's: PSI per column over the practical
threshold and the window size's critical value (Bonferroni over columns), alert at the drift share.
Run with ``-s`` to see the measured rates.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_core.settings import MonitoringSettings
from stages.data.generator import ENTITY_ID, TARGET, TIMESTAMP, generate_day
from stages.monitoring.psi import DriftNull, psi

POLICY = MonitoringSettings()
TRIALS = 200
REFERENCES = 2  # the reference's own noise matters too: the trials are spread over fresh references
WINDOW_ROWS = (100, 1_000, 50_000)


def generated() -> tuple[pd.DataFrame, int]:
    """The generator's population (a large pool) and a reference of the training sample's usual size."""
    return generate_day(date(2026, 1, 1), 200_000, seed=11).drop(columns=[TARGET, ENTITY_ID, TIMESTAMP]), 5_000


def breast_cancer() -> tuple[pd.DataFrame, int]:
    """569 rows, drawn with replacement (samples of its empirical distribution), 400 as the reference."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).data, 400


POPULATIONS = {"generated": generated, "breast-cancer": breast_cancer}


def null_of(reference: pd.DataFrame) -> DriftNull:
    numeric = [c for c in reference if pd.api.types.is_numeric_dtype(reference[c])]
    categorical = [c for c in reference if c not in numeric]
    return DriftNull.of(reference, numeric, categorical, POLICY.drift_false_alarm_rate)


def draw(population: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return population.iloc[rng.integers(0, len(population), rows)].reset_index(drop=True)


@pytest.mark.slow  # about 20 s per population: 600 checks, up to 50,000 rows each
@pytest.mark.parametrize("name", list(POPULATIONS))
def test_windows_of_the_reference_distribution_alert_in_at_most_one_percent_of_checks(name):
    population, reference_rows = POPULATIONS[name]()
    rng = np.random.default_rng(7)
    references = [draw(population, reference_rows, rng) for _ in range(REFERENCES)]
    nulls = [null_of(reference) for reference in references]
    fixed_threshold_rates = {}
    for rows in WINDOW_ROWS:
        alerts = any_column = fixed_threshold_alerts = 0
        for trial in range(TRIALS):
            null = nulls[trial % REFERENCES]
            verdicts = null.verdicts(draw(population, rows, rng), POLICY.column_drift_threshold)
            alerts += verdicts.drift_share >= POLICY.drift_share_threshold
            any_column += bool(verdicts.drifted)
            over = sum(score > POLICY.column_drift_threshold for score in verdicts.scores.values())
            fixed_threshold_alerts += over / len(verdicts.scores) >= POLICY.drift_share_threshold
        fixed_threshold_rates[rows] = fixed_threshold_alerts / TRIALS
        print(
            f"\n{name}, {rows:,} rows vs {reference_rows:,}: alert rate {alerts / TRIALS:.1%}, some column "
            f"falsely drifted {any_column / TRIALS:.1%} (PSI > {POLICY.column_drift_threshold} alone: "
            f"alert rate {fixed_threshold_rates[rows]:.1%})"
        )
        assert alerts / TRIALS <= 0.01, (name, rows)
        # The family-wise rate is at most drift_false_alarm_rate by construction; 2 % allows the trials' noise.
        assert any_column / TRIALS <= 2 * POLICY.drift_false_alarm_rate, (name, rows)
    # The simulation sees the fixed threshold's false alarms on small windows, so it could see this rule's.
    assert fixed_threshold_rates[WINDOW_ROWS[0]] > 0.01


SHIFTED = {"generated": ["annual_income", "credit_score", "loan_amount"], "breast-cancer": None}


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_a_half_standard_deviation_shift_in_three_columns_is_found_at_a_thousand_rows(name):
    population, reference_rows = POPULATIONS[name]()
    columns = SHIFTED[name] or list(population.columns[:3])
    rng = np.random.default_rng(8)
    reference = draw(population, reference_rows, rng)
    null = null_of(reference)
    found = 0
    trials = 20
    for _ in range(trials):
        window = draw(population, 1_000, rng)
        for column in columns:
            window[column] = window[column] + 0.5 * reference[column].std()
        verdicts = null.verdicts(window, POLICY.column_drift_threshold)
        found += set(columns) <= set(verdicts.drifted)
    print(f"\n{name}: all 3 shifted columns found in {found}/{trials} windows of 1,000 rows")
    assert found == trials


def test_psi_is_zero_for_equal_shares_and_grows_with_the_gap():
    reference = np.array([0.25, 0.25, 0.5])
    assert psi(reference, reference) == 0
    assert 0 < psi(np.array([0.3, 0.2, 0.5]), reference) < psi(np.array([0.5, 0.0, 0.5]), reference)


def test_the_critical_value_shrinks_with_the_window_and_is_cached():
    population, reference_rows = generated()
    null = null_of(draw(population, reference_rows, np.random.default_rng(1)))
    small, large = null.critical_values(200), null.critical_values(20_000)
    assert all(small[c] > large[c] for c in small)
    assert null.critical_values(200) is small


def test_missing_values_and_unseen_categories_are_bins_of_their_own():
    reference = pd.DataFrame({"x": np.arange(1_000.0), "c": ["a", "b"] * 500})
    null = DriftNull.of(reference, ["x"], ["c"], 0.01)
    window = pd.DataFrame({"x": [np.nan] * 500 + list(range(500)), "c": ["z"] * 1_000})
    verdicts = null.verdicts(window, 0.1)
    assert set(verdicts.drifted) == {"x", "c"}
