"""Stage (4) of the pFBA solve: the minimum-norm tie-break among alternative optima.

Independent references: (a) COBRApy/GLPK solves an LP over the optimal face of the total-flux
stage (growth and total split flux held at their optima); x* is the minimum-norm point of a
convex set F iff min_{x in F} x*.x = ||x*||^2, so that LP certifies the l2 point without using
any of mpc_bio's face identification. (b) Uniqueness: the l2 solution does not depend on the
solver's history (warm start, order of the points), while the raw simplex vertex does.
(c) Continuity: halving the step between neighbouring points halves their largest difference.
"""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism import PFBASettings, PFBASolver, SettingsError
from mpc_bio.metabolism.dataset import DatasetError, FluxDataset
from mpc_bio.metabolism.sampling import grid_points, sample_pfba

#: relative allowance on the face's total flux and growth in the certificate LP (the solver's own
#: growth tolerance is 1e-9 relative; GLPK's feasibility tolerance is set to 1e-9 below)
FACE_REL = 1e-9
#: relative tolerance of the certificate min x*.x >= ||x*||^2 (LP round-off at ||x*||^2 ~ 1e4-1e5)
CERT_REL = 1e-6


def _certificate_gap(model, solver, point) -> float:
    """(||x*||^2 - min_{x in face} x*.x) / ||x*||^2 for the split-flux vector x* of ``point``.

    The face: uptakes fixed, growth >= growth* (1 - FACE_REL), total split flux <= total* (1 + FACE_REL);
    solved by COBRApy/GLPK on its own forward/reverse variables.
    """
    r = len(solver.reaction_ids)
    xs = point.split_fluxes
    norm2 = float(xs @ xs)
    tol = model.solver.configuration.tolerances
    old = tol.feasibility
    tol.feasibility = 1e-9
    try:
        with model:
            for (name, rid), u in zip(solver.settings.inputs, point.inputs):
                model.reactions.get_by_id(rid).bounds = (-u, -u)
            bio = model.reactions.get_by_id(solver.objective_id)
            bio.lower_bound = point.growth * (1.0 - FACE_REL)
            rxns = [model.reactions.get_by_id(rid) for rid in solver.reaction_ids]
            total = sum(rx.forward_variable + rx.reverse_variable for rx in rxns)
            cons = model.problem.Constraint(total, ub=point.total_flux * (1.0 + FACE_REL))
            model.add_cons_vars(cons)
            model.objective = model.problem.Objective(
                sum(float(xs[j]) * rx.forward_variable + float(xs[r + j]) * rx.reverse_variable for j, rx in enumerate(rxns)),
                direction="min",
            )
            value = model.slim_optimize()
    finally:
        tol.feasibility = old
    assert np.isfinite(value), "the certificate LP must be feasible (x* itself lies on the face)"
    return (norm2 - value) / norm2


def _points(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([1.0, 1.0], [20.0, 20.0], size=(n, 2))


def test_l2_point_is_the_minimum_norm_point_of_the_optimal_face(ecoli_core):
    l2 = PFBASolver(ecoli_core, PFBASettings(tie_break="l2"))
    raw = PFBASolver(ecoli_core, PFBASettings(tie_break="none"))
    gaps_l2, gaps_raw = [], []
    for u in _points(40, seed=3):
        a, b = l2.solve(u), raw.solve(u)
        if a.status != "optimal":
            continue
        # the tie-break keeps growth and total flux (the lexicographic optima) unchanged
        assert a.growth == pytest.approx(b.growth, rel=1e-9, abs=1e-12)
        assert a.total_flux == pytest.approx(b.total_flux, rel=1e-8)
        assert a.message == ""
        gaps_l2.append(_certificate_gap(ecoli_core, l2, a))
        gaps_raw.append(_certificate_gap(ecoli_core, raw, b))
    assert len(gaps_l2) >= 30
    assert max(gaps_l2) <= CERT_REL, max(gaps_l2)
    # the test can fail: at some of these points the simplex vertex is not the minimum-norm optimum
    assert sum(g > 1e-3 for g in gaps_raw) >= 3, sorted(gaps_raw)[-5:]


def test_l2_solution_does_not_depend_on_the_solver_history(ecoli_core):
    """Forward order, backward order, and a cold solve per point give the same l2 solution."""
    pts = _points(60, seed=11)
    forward = PFBASolver(ecoli_core, PFBASettings(tie_break="l2"))
    backward = PFBASolver(ecoli_core, PFBASettings(tie_break="l2"))
    cold = PFBASolver(ecoli_core, PFBASettings(tie_break="l2"))
    f = np.array([forward.solve(u).fluxes for u in pts])
    b = np.array([backward.solve(u).fluxes for u in pts[::-1]])[::-1]
    c = []
    for u in pts:
        cold.reset()
        c.append(cold.solve(u).fluxes)
    # unique, so identical up to LP round-off (fluxes up to ~1e2 mmol/gDW/h)
    assert np.abs(f - b).max() <= 1e-6
    assert np.abs(f - np.array(c)).max() <= 1e-6


def test_l2_map_is_continuous_across_a_ramp(ecoli_core):
    """Along oxygen at glucose 0.6 the pFBA map has a steep ramp (NADTRHD, about 3.5 mmol per
    mmol O2) inside a region of alternative optima; halving the step halves the largest jump
    (ratio 0.5 for a Lipschitz map; a jump would give about 1)."""
    solver = PFBASolver(ecoli_core, PFBASettings(tie_break="l2"))

    def max_jump(step: float) -> float:
        ox = np.arange(3.2, 3.6 + 1e-12, step)
        v = np.array([solver.solve([0.6, o]).fluxes for o in ox])
        return float(np.abs(np.diff(v, axis=0)).max())

    coarse, fine = max_jump(0.01), max_jump(0.005)
    assert coarse > 1e-3  # the line does cross a changing region
    assert fine / coarse == pytest.approx(0.5, abs=0.1), (coarse, fine)


def test_tie_break_setting_validation_and_dataset_record(ecoli_core, tmp_path):
    with pytest.raises(SettingsError, match="tie_break"):
        PFBASettings(tie_break="l1")
    assert PFBASettings().tie_break == "none"  # the default (cost and measured benefit: README)
    data = sample_pfba(
        ecoli_core, grid_points({"glucose": (0, 10, 5), "oxygen": (0, 10, 5)}), PFBASettings(tie_break="none"), progress=False
    )
    data.save(tmp_path / "d")
    assert FluxDataset.load(tmp_path / "d").settings["pfba"]["tie_break"] == "none"
    meta_path = tmp_path / "d" / "dataset.json"
    import json

    meta = json.loads(meta_path.read_text())
    # a dataset written before the setting existed was solved without a tie-break
    del meta["settings"]["pfba"]["tie_break"]
    meta_path.write_text(json.dumps(meta))
    assert FluxDataset.load(tmp_path / "d").settings["pfba"]["tie_break"] == "none"
    meta["settings"]["pfba"]["tie_break"] = "l3"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="tie_break"):
        FluxDataset.load(tmp_path / "d")


def test_sample_cli_records_the_tie_break(tmp_path):
    """`mpc-bio sample --tie-break l2` writes the rule into dataset.json and summary.json; the
    l2 dataset's growth and total flux equal those of the default (no tie-break) dataset."""
    import json

    from mpc_bio.cli import main

    grid = ["--grid", "glucose=2:10:4", "--grid", "oxygen=2:10:4", "--workers", "1", "--no-progress", "--no-figure"]
    assert main(["sample", "e_coli_core", *grid, "--tie-break", "l2", "--out", str(tmp_path / "l2")]) == 0
    assert main(["sample", "e_coli_core", *grid, "--out", str(tmp_path / "none")]) == 0
    a, b = FluxDataset.load(tmp_path / "l2"), FluxDataset.load(tmp_path / "none")
    assert a.settings["pfba"]["tie_break"] == "l2" and b.settings["pfba"]["tie_break"] == "none"
    assert json.loads((tmp_path / "l2" / "summary.json").read_text())["tie_break"] == "l2"
    np.testing.assert_allclose(a.growth, b.growth, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.split_fluxes.sum(axis=1), b.split_fluxes.sum(axis=1), rtol=1e-8, atol=1e-9)
