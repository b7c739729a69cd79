"""The loop's drift is one that retraining wins, whatever date the loop's data starts on.

A day's generated data depends on its date and ``mlops loop`` dates its data from today, so the loop's switch to
the retrained version must not hang on the calendar. Replayed without servers (``benchmarks/loop_gate.py``) at
5,000 rows a day, the full-loop test's size and the harder case (the demo has 10,000), on dates spread over a year.
"""

from datetime import timedelta

import pytest

from benchmarks.loop_gate import FIRST_DATE, replay
from tooling.loop import DRIFT_SCENARIO, DRIFT_STRENGTH


@pytest.mark.parametrize("drift_start", [FIRST_DATE + timedelta(days=46 * k) for k in range(8)], ids=str)
def test_the_retrained_version_is_promoted_with_a_clear_margin(drift_start) -> None:
    result = replay(drift_start, rows_per_day=5_000, scenario=DRIFT_SCENARIO, strength=DRIFT_STRENGTH)
    assert result.promoted, result
    assert result.lower_bound > 0.03, result
