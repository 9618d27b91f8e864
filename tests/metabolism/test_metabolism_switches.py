"""switch_points / fit_hyperplane: phase boundaries of the pFBA map located by bisection."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism import PFBASolver, fit_hyperplane, load_model, switch_points


@pytest.fixture(scope="module")
def solver():
    return PFBASolver(load_model("e_coli_core"))


def test_switch_points_match_a_fine_scan(solver):
    """Where acetate export stops along oxygen (e_coli_core, glucose 4-8): the bisection agrees with
    an independent scan of fresh solves every 1e-4 mmol/gDW/h (within one scan step, abs 1e-4), the
    state differs 1e-7 to either side, and the points lie on one straight line (max distance 1e-6)."""
    j = solver.problem.reaction_ids.index("EX_ac_e")
    P = switch_points(solver, "EX_ac_e", "oxygen", [[g, 0.0] for g in (4.0, 5.0, 6.0, 8.0)], 5.0, 30.0, xtol=1e-9)
    assert np.all(np.isfinite(P)) and np.array_equal(P[:, 0], [4.0, 5.0, 6.0, 8.0])
    for g, o in P:
        scan = np.arange(o - 0.002, o + 0.002, 1e-4)
        on = np.array([abs(solver.solve([g, s]).fluxes[j]) > 1e-6 for s in scan])
        first_off = scan[np.argmin(on)]  # acetate is exported below the switch, not above
        assert on[0] and not on[-1]
        assert o == pytest.approx(first_off, abs=1e-4, rel=0)
        assert abs(solver.solve([g, o - 1e-7]).fluxes[j]) > 1e-6 >= abs(solver.solve([g, o + 1e-7]).fluxes[j])
    line, dist = fit_hyperplane(P)
    assert dist <= 1e-6
    assert np.linalg.norm(line[:2]) == pytest.approx(1.0, abs=1e-12, rel=0)
    np.testing.assert_allclose(P @ np.array(line[:2]), line[2], rtol=0, atol=1e-6)


def test_switch_points_without_a_switch_and_bad_input(solver):
    """A bracket with no switch gives a NaN row; bad input (settings beside a ready solver too) names the parameter."""
    P = switch_points(solver, "EX_ac_e", "oxygen", [[5.0, 0.0], [5.0, 0.0]], 25.0, 30.0)
    assert np.all(np.isnan(P))
    with pytest.raises(ValueError, match="'along'"):
        switch_points(solver, "EX_ac_e", "nitrogen", [[5.0, 0.0]], 5.0, 30.0)
    with pytest.raises(ValueError, match="'reaction'"):
        switch_points(solver, "NOPE", "oxygen", [[5.0, 0.0]], 5.0, 30.0)
    with pytest.raises(ValueError, match="'low' and 'high'"):
        switch_points(solver, "EX_ac_e", "oxygen", [[5.0, 0.0]], 30.0, 5.0)
    with pytest.raises(ValueError, match="'settings'"):
        switch_points(solver, "EX_ac_e", "oxygen", [[5.0, 0.0]], 5.0, 30.0, settings=solver.problem.settings)
    with pytest.raises(ValueError, match="'points'"):
        switch_points(solver, "EX_ac_e", "oxygen", [[5.0, 0.0, 1.0]], 5.0, 30.0)


def test_fit_hyperplane_closed_form():
    """Points on oxygen = 2 glucose + 1 (and one NaN row, skipped): the line (2, -1, -1) / sqrt(5),
    largest |a_i| positive, distance 0 (abs 1e-12); too few points are refused."""
    g = np.array([0.0, 1.0, 2.5, 7.0])
    P = np.vstack([np.column_stack([g, 2 * g + 1]), [np.nan, 1.0]])
    line, dist = fit_hyperplane(P)
    np.testing.assert_allclose(line, np.array([2.0, -1.0, -1.0]) / np.sqrt(5.0), rtol=0, atol=1e-12)
    assert dist == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="'points'"):
        fit_hyperplane([[1.0, 2.0]])
