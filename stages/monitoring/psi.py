"""The drift rule: a column drifts when its PSI is both practically large and beyond sampling noise.

PSI between two samples of one distribution is not zero: for ``b`` bins it is about ``(b - 1) (1/n + 1/m)``
for a window of ``n`` rows against a reference of ``m`` (it behaves like a scaled chi-square). A fixed
threshold therefore alarms on small windows (100 rows against 400: about 0.1 from noise alone) and a bare
significance test alarms on trivial shifts of huge windows. A column counts as drifted only when its PSI
exceeds the practical threshold AND the critical value of its null distribution at this window's size.

The null comes from the reference by bootstrap, on its binned counts rather than its rows: the distribution
the window is drawn from is resampled as a Bayesian bootstrap of the reference (bin probabilities from a
Dirichlet of the reference's bin counts, half a row added to each bin so a category the reference lacks may
still appear), a window's bin counts are drawn from it, and its PSI against the reference's own shares is
the statistic. Both samples' noise, this reference's bins, ties, rare categories and the floor of empty bins
(the tail at small windows: one empty bin adds about 0.7) are in it, where the chi-square asymptotics miss the
last three. Drawing counts costs nothing per row, so the null costs the same at any window size; it is cached per
window size. The critical value is the null's ``1 - rate / columns`` quantile (Bonferroni): the chance that
any column of a check is falsely drifted is at most ``rate``, whatever the correlation between columns, so a
drift-share alert (a share of drifted columns) is at most as frequent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PSI_BINS = 10  # equal-frequency bins of the reference for a numeric column
EMPTY_BIN_SHARE = 1e-4  # an empty bin's share, so PSI stays finite (Evidently's floor)
TAIL_REPLICATES = 20  # bootstrap replicates expected beyond the critical value: its estimate is stable
PRIOR_ROWS_PER_BIN = 0.5  # added to each reference bin's count in the bootstrap (Jeffreys)
BOOTSTRAP_SEED = 20_240_601  # one seed: the same window against the same reference gets the same verdict


def psi(current: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Population stability index of bin shares, over the last axis (so many replicates at once)."""
    current = np.maximum(current, EMPTY_BIN_SHARE)
    reference = np.maximum(reference, EMPTY_BIN_SHARE)
    return np.sum((current - reference) * np.log(current / reference), axis=-1)


def _window_shares(rng: np.random.Generator, rows: int, counts: np.ndarray, replicates: int) -> np.ndarray:
    """Bin shares of ``replicates`` windows of about ``rows`` rows from Bayesian-bootstrap resamplings of the
    reference's distribution. Independent Poisson counts, normalised, are multinomial shares for a total
    within a few sqrt(rows) of ``rows``, and twenty times faster to draw than multinomials."""
    probabilities = rng.gamma(counts + PRIOR_ROWS_PER_BIN, size=(replicates, len(counts)))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    window = rng.poisson(rows * probabilities)
    return window / np.maximum(window.sum(axis=1, keepdims=True), 1)


@dataclass(frozen=True)
class ColumnBins:
    """A column's bins, fixed by the reference: quantile edges (numeric) or its categories, plus "missing"
    (numeric and categorical) and "unseen" (categorical), so a surge of nulls or new values is drift too."""

    name: str
    edges: np.ndarray | None = None
    categories: tuple[str, ...] = ()

    @classmethod
    def of_numeric(cls, name: str, reference: pd.Series) -> ColumnBins:
        values = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
        quantiles = np.quantile(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]) if len(values) else []
        return cls(name, edges=np.unique(quantiles))

    @classmethod
    def of_categorical(cls, name: str, reference: pd.Series) -> ColumnBins:
        return cls(name, categories=tuple(sorted({str(v) for v in reference.dropna()})))

    @property
    def size(self) -> int:
        return (len(self.edges) + 2) if self.edges is not None else (len(self.categories) + 2)

    def index(self, column: pd.Series) -> np.ndarray:
        """Each value's bin; the last bin holds missing values."""
        missing = column.isna().to_numpy()
        if self.edges is not None:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            found = np.searchsorted(self.edges, np.nan_to_num(values), side="right")
            missing = missing | np.isnan(values)
        else:
            found = pd.Index(self.categories).get_indexer(column.astype(str))
            found = np.where(found < 0, len(self.categories), found)  # the "unseen" bin
        return np.where(missing, self.size - 1, found)

    def shares(self, column: pd.Series) -> np.ndarray:
        return np.bincount(self.index(column), minlength=self.size) / max(len(column), 1)


@dataclass
class ColumnVerdicts:
    """Per column: the PSI, the critical value at this window size, and whether it counts as drifted."""

    rows: int
    scores: dict[str, float]
    critical_values: dict[str, float]
    drifted: dict[str, float]

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / len(self.scores) if self.scores else 0.0


@dataclass
class DriftNull:
    """The reference's bins and shares, and the null critical values of PSI per window size (cached)."""

    bins: list[ColumnBins]
    reference_shares: list[np.ndarray]
    reference_rows: int
    false_alarm_rate: float
    _critical: dict[int, dict[str, float]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls, reference: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str], false_alarm_rate: float
    ) -> DriftNull:
        bins = [
            ColumnBins.of_numeric(n, reference[n]) if n in numeric else ColumnBins.of_categorical(n, reference[n])
            for n in [*numeric, *categorical]
        ]
        shares = [b.shares(reference[b.name]) for b in bins]
        return cls(bins, shares, len(reference), false_alarm_rate)

    @property
    def column_level(self) -> float:
        """Each column's test level after the Bonferroni correction."""
        return self.false_alarm_rate / len(self.bins)

    def critical_values(self, rows: int) -> dict[str, float]:
        """PSI that sampling alone exceeds with probability ``column_level``, for a window of ``rows`` rows."""
        if rows not in self._critical:
            replicates = math.ceil(TAIL_REPLICATES / self.column_level)
            rng = np.random.default_rng([BOOTSTRAP_SEED, rows])
            critical = {}
            for column, shares in zip(self.bins, self.reference_shares, strict=True):
                window = _window_shares(rng, rows, shares * self.reference_rows, replicates)
                critical[column.name] = float(np.quantile(psi(window, shares), 1 - self.column_level))
            self._critical[rows] = critical
        return self._critical[rows]

    def scores(self, current: pd.DataFrame) -> dict[str, float]:
        return {
            b.name: float(psi(b.shares(current[b.name]), shares))
            for b, shares in zip(self.bins, self.reference_shares, strict=True)
        }

    def verdicts(self, current: pd.DataFrame, threshold: float) -> ColumnVerdicts:
        """Drifted columns: PSI over the practical ``threshold`` and over the window size's critical value."""
        scores = self.scores(current)
        critical = self.critical_values(len(current))
        drifted = {
            name: score
            for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
            if score > threshold and score > critical[name]
        }
        return ColumnVerdicts(len(current), scores, critical, drifted)
