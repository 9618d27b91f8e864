"""The build's batch size from the data size and the measured cost of an Adam step."""

from __future__ import annotations

import pytest

from mpc_bio.surrogate.build import _step_cost, choose_batch_size


def _cost(c0: float, c1: float):
    return lambda b: c0 + c1 * b


def test_many_points_and_cheap_steps_keep_the_largest_batch():
    """e_coli_core-like: 84,000 training points, 1,000 s, 2 ms + 30 us per point per step: at 1024
    points a step costs 32.7 ms, 30,600 steps >= 20,000, and 82 steps per epoch >= 16."""
    assert choose_batch_size(84_000, 1000.0, _cost(2e-3, 3e-5)) == 1024


def test_few_points_give_smaller_batches():
    """Same step cost, 3,200 points: 1024 gives 3 steps per epoch; the largest power-of-two fraction of
    1024 with >= 16 steps per epoch is 128 (3200 / 128 = 25; 3200 / 256 = 12.5 < 16)."""
    assert choose_batch_size(3_200, 1000.0, _cost(2e-3, 3e-5)) == 128
    sizes = [choose_batch_size(n, 1000.0, _cost(2e-3, 3e-5)) for n in (500, 3_200, 20_000, 84_000)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_expensive_steps_give_smaller_batches_for_enough_steps():
    """iJO1366-like: 50,000 points, 260 s, 5 ms + 0.2 ms per point per step. At b the steps are
    260 / (5e-3 + 2e-4 b): 1024 -> 1,239, 512 -> 2,421, ..., 64 -> 14,607, 32 -> 22,807 >= 20,000."""
    assert choose_batch_size(50_000, 260.0, _cost(5e-3, 2e-4)) == 32
    # 10,000 steps wanted: 64 gives 14,607 >= 10,000, 128 gives 8,497 < 10,000
    assert choose_batch_size(50_000, 260.0, _cost(5e-3, 2e-4), min_steps=10_000) == 64


def test_never_below_the_smallest_batch():
    assert choose_batch_size(10, 1.0, _cost(1.0, 1.0), min_batch=32) == 32
    assert choose_batch_size(10, 1.0, _cost(1.0, 1.0), max_batch=16, min_batch=16) == 16
    with pytest.raises(ValueError, match="min_batch"):
        choose_batch_size(10, 1.0, _cost(1.0, 1.0), max_batch=16, min_batch=32)


def test_step_cost_is_the_line_through_the_pilot():
    """Two measured (batch, s) pairs define c0 + c1 b exactly (rel 1e-12); one pair is proportional."""
    f = _step_cost({64: 7e-3, 1024: 0.055})
    c1 = (0.055 - 7e-3) / (1024 - 64)
    assert f(64) == pytest.approx(7e-3, rel=1e-12, abs=0)
    assert f(1024) == pytest.approx(0.055, rel=1e-12, abs=0)
    assert f(0) == pytest.approx(7e-3 - 64 * c1, rel=1e-12, abs=0)
    assert _step_cost({100: 0.01})(50) == pytest.approx(0.005, rel=1e-12, abs=0)
    # a noisy pilot where the small batch was slower: no negative slope, the larger time as a constant
    g = _step_cost({64: 0.02, 1024: 0.01})
    assert g(64) == g(1024) == pytest.approx(0.02, rel=1e-12, abs=0)
