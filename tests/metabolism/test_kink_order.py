"""The kink search bisects the sharpest candidates first (sharpness estimated on the grid, no solves)."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.metabolism.sampling import grid_points, sample_pfba
from mpc_bio.metabolism.settings import PFBASettings
from mpc_bio.metabolism.switches import _grid_jump, find_kink_lines


def _grid(f, n: int = 11):
    """A regular n x n grid over [0, 10]^2 (step h = 10 / (n - 1)) with node and index maps as the search builds them."""
    axis = np.linspace(0.0, 10.0, n)
    X = np.array([(x, y) for x in axis for y in axis])
    V = f(X)
    idx = np.stack([np.searchsorted(axis, X[:, j]) for j in range(2)], axis=1)
    node = np.full((n, n), -1, dtype=np.int64)
    node[tuple(idx.T)] = np.arange(X.shape[0])
    return X, V, node, idx


def test_grid_jump_is_slope_change_times_step_over_range():
    """Closed form: r0 = max(0, x - 4.5) + 0.25 y (slope in x jumps by 1 at x = 4.5), r1 = 3 y (no kink).
    On the step-1 grid the edges x = 4 -> 5 carry the kink: slope change 1 times step 1 over r0's range
    5.5 + 2.5 = 8 is 0.125 (r1 adds 0). Tolerance 1e-12 absolute (exact arithmetic on small integers)."""
    X, V, node, idx = _grid(lambda X: np.column_stack([np.maximum(0.0, X[:, 0] - 4.5) + 0.25 * X[:, 1], 3.0 * X[:, 1]]))
    ranges = np.ptp(V, axis=0)
    assert ranges == pytest.approx([8.0, 30.0], abs=1e-12, rel=0)
    ok = np.ones(len(X), dtype=bool)
    crossing = np.array([(int(node[4, j]), 0) for j in range(11)])
    assert _grid_jump(V, ok, node, idx, crossing, ranges) == pytest.approx(1.0 / 8.0, abs=1e-12, rel=0)
    # edges away from the kink (x = 7 -> 8) and along it (axis 1) see no change of slope
    away = np.array([(int(node[7, j]), 0) for j in range(11)])
    along = np.array([(int(node[4, j]), 1) for j in range(1, 8)])
    assert _grid_jump(V, ok, node, idx, away, ranges) == pytest.approx(0.0, abs=1e-12, rel=0)
    assert _grid_jump(V, ok, node, idx, along, ranges) == pytest.approx(0.0, abs=1e-12, rel=0)
    # at a face the edge's own slope stands in for the missing side: r2 = max(0, x - 0.5) kinks half-way
    # along the edge x = 0 -> 1, which then shows (1.5 - 0.5) - (0.5 - 0) = 0.5 of the slope change over r2's
    # range 9.5; r2 is the only reaction with a kink there
    X, V, node, idx = _grid(lambda X: np.column_stack([np.maximum(0.0, X[:, 0] - 0.5), 3.0 * X[:, 1]]))
    ranges = np.ptp(V, axis=0)
    face = np.array([(int(node[0, j]), 0) for j in range(11)])
    assert _grid_jump(V, ok, node, idx, face, ranges) == pytest.approx(0.5 / 9.5, abs=1e-12, rel=0)
    # a one-point grid axis has no second difference: 0
    assert _grid_jump(V[:1], ok[:1], np.zeros((1, 1), dtype=np.int64), np.zeros((1, 2), dtype=np.int64), np.array([(0, 0)]), ranges) == 0.0


@pytest.mark.slow
def test_a_tight_budget_keeps_the_sharpest_line(_ecoli_core_session):
    """e_coli_core, glucose x oxygen 0-10 step 0.5: with a solve budget of a fifth of the full search,
    the sharpest line of the full search (by :attr:`KinkLine.jump`) is still found, within the search's
    straightness (1e-3 grid steps, absolute, on the line's offset), because it is bisected first."""
    settings = PFBASettings(tie_break="l2")
    grid = sample_pfba(
        _ecoli_core_session, grid_points({"glucose": (0.0, 10.0, 0.5), "oxygen": (0.0, 10.0, 0.5)}), settings, progress=False
    )
    solver = PFBASolver(_ecoli_core_session, settings)
    full = find_kink_lines(solver, grid, max_lines=0, min_jump=0.0, seed=0)
    top = full.lines[0]
    cut = find_kink_lines(solver, grid, max_lines=0, min_jump=0.0, max_solves=full.n_solves // 5, seed=0)
    assert cut.n_solves < full.n_solves
    tol = 1e-3 * 0.5
    a, c = np.asarray(top.line[:-1]), top.line[-1]
    assert any(np.allclose(kl.line[:-1], a, atol=1e-3, rtol=0) and abs(kl.line[-1] - c) <= tol for kl in cut.lines), (
        top.line,
        [kl.line for kl in cut.lines],
    )
