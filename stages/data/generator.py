"""Synthetic loan-default data, written as dated daily batches the way production data arrives.

Each day's rows come from a random stream seeded by (seed, date, scenario), so a day's batch is the same no
matter how many other days are generated with it, and appending new days later continues the series.
Scenarios:

- ``none``: the reference population.
- ``covariate``: applicant features move (lower credit scores and incomes, higher debt, another purpose and
  channel mix); the label relation P(default | features) stays the same.
- ``concept``: features keep their distribution; the relation between features and default changes.
- ``covariate_and_concept``: both at once, as when a new population arrives with risks of its own: a model
  trained before it is measurably worse after it, so retraining has something to win (the loop's drift).

``drift_strength`` scales the shift (0 = none, 1 = the intended scenario, larger = stronger).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Scenario = Literal["none", "covariate", "concept", "covariate_and_concept"]

TARGET = "defaulted"
ENTITY_ID = "applicant_id"
TIMESTAMP = "application_ts"

HOME_OWNERSHIP = ["RENT", "MORTGAGE", "OWN", "OTHER"]
LOAN_PURPOSE = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "other",
]
EMPLOYMENT_TYPE = ["salaried", "self_employed", "contract", "unemployed", "retired"]
REGION = ["north", "south", "east", "west", "central"]
CHANNEL = ["online", "branch", "broker"]

# Default-rate effects per category (log-odds), in the category order above.
_PURPOSE_EFFECT = np.array([0.10, 0.0, -0.25, -0.15, 0.35, 0.55, 0.15])
_EMPLOYMENT_EFFECT = np.array([-0.15, 0.25, 0.20, 0.90, 0.05])
_HOME_EFFECT = np.array([0.20, -0.10, -0.25, 0.15])
_CHANNEL_EFFECT = np.array([0.0, -0.10, 0.30])


@dataclass(frozen=True)
class Shift:
    """How far the scenario moves features (covariate) or the label relation (concept)."""

    covariate: float = 0.0
    concept: float = 0.0

    @classmethod
    def of(cls, scenario: Scenario, strength: float) -> Shift:
        if scenario == "covariate":
            return cls(covariate=strength)
        if scenario == "concept":
            return cls(concept=strength)
        if scenario == "covariate_and_concept":
            return cls(covariate=strength, concept=strength)
        return cls()


def _stream(seed: int, day: date, scenario: Scenario) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), zlib.crc32(scenario.encode())])


def _categorical(rng: np.random.Generator, n: int, probs: np.ndarray, missing: float = 0.0) -> np.ndarray:
    codes = rng.choice(len(probs), size=n, p=probs / probs.sum())
    if missing:
        codes[rng.random(n) < missing] = -1
    return codes


def _with_missing(rng: np.random.Generator, values: np.ndarray, fraction: float) -> np.ndarray:
    values = values.astype(np.float64)
    values[rng.random(len(values)) < fraction] = np.nan
    return values


def generate_day(
    day: date,
    rows: int,
    *,
    seed: int = 0,
    scenario: Scenario = "none",
    drift_strength: float = 1.0,
    entities: int = 200_000,
) -> pd.DataFrame:
    """One day of loan applications with their default outcome."""
    rng = _stream(seed, day, scenario)
    shift = Shift.of(scenario, drift_strength)
    c, k = shift.covariate, shift.concept

    age = np.clip(rng.normal(42, 12, rows), 18, 85).round()
    income = np.clip(rng.lognormal(10.95 - 0.30 * c, 0.5, rows), 8_000, 1_000_000)
    employment_years = np.minimum(age - 18, rng.gamma(2.0, 3.0, rows)).round(1)
    credit_score = np.clip(rng.normal(690 - 45 * c, 70, rows), 300, 850).round()
    loan_amount = np.clip(rng.lognormal(9.45 + 0.20 * c, 0.6, rows), 500, 100_000).round(2)
    loan_term = rng.choice(np.array([12, 24, 36, 48, 60]), size=rows, p=[0.1, 0.2, 0.35, 0.15, 0.2])
    interest_rate = np.clip(26 - (credit_score - 300) / 550 * 20 + rng.normal(0, 1.5, rows), 3, 36).round(2)
    debt_to_income = np.clip(rng.beta(2, 5, rows) * 0.9 + 0.10 * c, 0, 1.5).round(4)
    utilization = np.clip(rng.beta(2, 3, rows) + 0.08 * c, 0, 1).round(4)
    open_accounts = rng.poisson(8, rows)
    delinquencies = rng.poisson(0.3 + 0.3 * c, rows)

    purpose_probs = np.array([0.32, 0.2, 0.12, 0.1, 0.07, 0.06, 0.13])
    purpose_probs = purpose_probs + c * np.array([-0.10, 0, -0.04, 0, 0.06, 0.08, 0])
    channel_probs = np.array([0.55, 0.30, 0.15]) + c * np.array([0.2, -0.15, -0.05])
    home = _categorical(rng, rows, np.array([0.4, 0.38, 0.18, 0.04]), missing=0.01)
    purpose = _categorical(rng, rows, np.clip(purpose_probs, 0.01, None))
    employment = _categorical(rng, rows, np.array([0.62, 0.14, 0.12, 0.06, 0.06]))
    region = _categorical(rng, rows, np.ones(5))
    channel = _categorical(rng, rows, np.clip(channel_probs, 0.01, None))

    # The label relation; ``k`` (concept drift) rotates which risk drivers matter.
    payment_burden = loan_amount / np.maximum(income, 1) * 12 / loan_term
    logit = (
        -2.3
        - (0.011 * (1 - 0.8 * k)) * (credit_score - 690)
        + (2.8 - 3.5 * k) * (debt_to_income - 0.26)
        + (1.0 + 2.0 * k) * (utilization - 0.4)
        + 0.45 * delinquencies
        + 3.0 * np.minimum(payment_burden, 1.0)
        + 0.9 * k * (age < 30)
        - 0.015 * (age - 42) * (1 - k)
        + _PURPOSE_EFFECT[purpose] * (1 - 2 * k)
        + _EMPLOYMENT_EFFECT[employment]
        + np.where(home >= 0, _HOME_EFFECT[np.maximum(home, 0)], 0.0)
        + _CHANNEL_EFFECT[channel]
        + 0.6 * ((credit_score < 620) & (debt_to_income > 0.4))
    )
    defaulted = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    midnight = pd.Timestamp(day, tz="UTC")
    seconds = np.sort(rng.integers(0, 86_400, rows))
    frame = pd.DataFrame(
        {
            ENTITY_ID: rng.integers(1, entities + 1, rows, dtype=np.int64),
            TIMESTAMP: midnight + pd.to_timedelta(seconds, unit="s"),
            "age": age.astype(np.int64),
            "annual_income": _with_missing(rng, income.round(2), 0.03),
            "employment_years": _with_missing(rng, employment_years, 0.06),
            "credit_score": _with_missing(rng, credit_score, 0.02),
            "loan_amount": loan_amount,
            "loan_term_months": loan_term.astype(np.int64),
            "interest_rate": interest_rate,
            "debt_to_income": debt_to_income,
            "credit_utilization": _with_missing(rng, utilization, 0.01),
            "open_accounts": open_accounts.astype(np.int64),
            "delinquencies_2y": delinquencies.astype(np.int64),
            "home_ownership": pd.Categorical.from_codes(home, HOME_OWNERSHIP),
            "loan_purpose": pd.Categorical.from_codes(purpose, LOAN_PURPOSE),
            "employment_type": pd.Categorical.from_codes(employment, EMPLOYMENT_TYPE),
            "region": pd.Categorical.from_codes(region, REGION),
            "application_channel": pd.Categorical.from_codes(channel, CHANNEL),
            TARGET: defaulted,
        }
    )
    return frame


def write_batches(
    directory: Path,
    *,
    rows: int,
    days: int,
    start: date,
    seed: int = 0,
    scenario: Scenario = "none",
    drift_strength: float = 1.0,
) -> list[Path]:
    """Write ``rows`` spread evenly over ``days`` daily Parquet files named ``YYYY-MM-DD.parquet``."""
    if rows < days:
        raise ValueError(f"rows ({rows}) must be at least days ({days}): every batch needs a row")
    directory.mkdir(parents=True, exist_ok=True)
    per_day = np.full(days, rows // days)
    per_day[: rows % days] += 1
    written = []
    for offset, count in enumerate(per_day):
        day = start + timedelta(days=offset)
        frame = generate_day(day, int(count), seed=seed, scenario=scenario, drift_strength=drift_strength)
        path = directory / f"{day.isoformat()}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)  # a reader never sees a half-written batch
        written.append(path)
    return written
