"""The sample-ratio-mismatch (SRM) check: is traffic split between the variants as configured?

A split that differs from the configured share more than chance allows means the assignment is broken (a
sticky key routing one caller's heavy traffic, a worker serving an old mode, rows lost on one side), and then
the groups are no longer comparable: no promotion or retirement can rest on them, whatever the test says. The
check is Pearson's chi-square goodness of fit of the two counts (one degree of freedom) at a small level
(``MLOPS_EXPERIMENT__SRM_ALPHA``, 0.001 by default, as usual for SRM: it runs at every evaluation and a false
alarm stops a sound experiment). Its false-alarm rate and power are simulated in the unit tests.
"""

from __future__ import annotations

from scipy import stats

from stages.experiment.results import SampleRatio


def sample_ratio_test(champion_rows: int, challenger_rows: int, expected_share: float, alpha: float) -> SampleRatio:
    """The observed challenger share against ``expected_share``; ``mismatch`` when its p-value is below ``alpha``."""
    total = champion_rows + challenger_rows
    if expected_share in (0.0, 1.0):  # no chance involved: any row on the side that gets none is a mismatch
        stray = challenger_rows if expected_share == 0.0 else champion_rows
        p_value = 0.0 if stray else 1.0
    else:
        expected = [total * (1 - expected_share), total * expected_share]
        p_value = float(stats.chisquare([champion_rows, challenger_rows], f_exp=expected).pvalue)
    return SampleRatio(
        champion_rows=champion_rows,
        challenger_rows=challenger_rows,
        expected_share=expected_share,
        observed_share=challenger_rows / total if total else 0.0,
        p_value=p_value,
        alpha=alpha,
    )
