"""The sample-ratio-mismatch (SRM) check: is traffic split between the variants as configured?

A split that differs from the configured share more than chance allows means the assignment is broken (a
sticky key routing one caller's heavy traffic, a worker serving an old mode, rows lost on one side), and then
the groups are no longer comparable: no promotion or retirement can rest on them, whatever the test says. The
check is Pearson's chi-square goodness of fit of the two counts (one degree of freedom) at a small level
(``MLOPS_EXPERIMENT__SRM_ALPHA``, 0.001 by default, as usual for SRM: it runs at every evaluation and a false
alarm stops a sound experiment). Its false-alarm rate and power are simulated in the unit tests.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from stages.experiment.results import SampleRatio


def srm_p_values(champion_rows: np.ndarray, challenger_rows: np.ndarray, expected_share: float) -> np.ndarray:
    """The chi-square goodness-of-fit p-values of splits (arrays: many at once, as the simulations need)."""
    champion_rows, challenger_rows = np.asarray(champion_rows, float), np.asarray(challenger_rows, float)
    if expected_share in (0.0, 1.0):  # no chance involved: any row on the side that gets none is a mismatch
        stray = challenger_rows if expected_share == 0.0 else champion_rows
        return np.where(stray > 0, 0.0, 1.0)
    total = champion_rows + challenger_rows
    expected = total * expected_share
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = (challenger_rows - expected) ** 2 / expected + (challenger_rows - expected) ** 2 / (
            total - expected
        )
    return np.where(total > 0, stats.chi2.sf(statistic, df=1), 1.0)


def sample_ratio_test(champion_rows: int, challenger_rows: int, expected_share: float, alpha: float) -> SampleRatio:
    """The observed challenger share against ``expected_share``; ``mismatch`` when its p-value is below ``alpha``."""
    total = champion_rows + challenger_rows
    p_value = float(srm_p_values(np.array(champion_rows), np.array(challenger_rows), expected_share))
    return SampleRatio(
        champion_rows=champion_rows,
        challenger_rows=challenger_rows,
        expected_share=expected_share,
        observed_share=challenger_rows / total if total else 0.0,
        p_value=p_value,
        alpha=alpha,
    )
