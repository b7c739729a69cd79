"""The sampling of a check's window."""

import pytest

from stages.monitoring.window import sampling_error_bound


def test_sampling_error_bound():
    assert sampling_error_bound(50_000) == pytest.approx(0.00607, abs=1e-4)
