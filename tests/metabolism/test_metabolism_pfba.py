"""Split-flux pFBA against COBRApy's own pfba (GLPK through optlang), relaxation and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpc_bio.metabolism import (
    InputError,
    ModelLoadError,
    PFBASettings,
    PFBASolver,
    SettingsError,
    grid_points,
    load_model,
    model_hash,
    sample_pfba,
)

REL, ABS_GROWTH, ABS_TOTAL = 1e-6, 1e-9, 1e-7


def _compare_with_cobra(cobra_pfba, model, points, min_feasible):
    """Solve with mpc_bio (sampling path and single-point path) and COBRApy; compare."""
    data = sample_pfba(model, np.asarray(points), progress=False, chunk_size=64)
    solver = PFBASolver(model)
    n_feasible = 0
    for i, (g, o) in enumerate(points):
        ref = cobra_pfba(model, {"glucose": g, "oxygen": o})
        pt = solver.solve({"glucose": g, "oxygen": o})
        if ref is None:
            # COBRApy infeasible <=> slacks were needed
            assert data.status[i] == 1, (g, o)
            assert pt.status == "relaxed", (g, o)
            assert np.nansum(data.slacks[i]) > 1e-6
            continue
        n_feasible += 1
        growth, total = ref
        assert data.status[i] == 0, (g, o)
        assert pt.status == "optimal", (g, o)
        assert np.all(data.slacks[i] == 0.0)
        assert data.growth[i] == pytest.approx(growth, rel=REL, abs=ABS_GROWTH)
        assert pt.growth == pytest.approx(growth, rel=REL, abs=ABS_GROWTH)
        assert data.split_fluxes[i].sum() == pytest.approx(total, rel=REL, abs=ABS_TOTAL)
        assert pt.total_flux == pytest.approx(total, rel=REL, abs=ABS_TOTAL)
    assert n_feasible >= min_feasible
    return data


def test_matches_cobra_pfba_on_e_coli_core(ecoli_core, cobra_pfba, spread):
    """>= 200 feasible points: growth and total split flux equal COBRApy's pfba (rel 1e-6)."""
    pts = [(g, o) for g in spread(0.6, 20.0, 16) for o in spread(0.0, 19.5, 16, offset=0.011)]
    data = _compare_with_cobra(cobra_pfba, ecoli_core, pts, min_feasible=200)
    # the infeasible (relaxed) region is visited too
    assert data.status_counts()["relaxed"] >= 5


def test_matches_cobra_pfba_on_ich360(ich360, cobra_pfba, spread):
    pts = [(g, o) for g in spread(1.0, 19.0, 5) for o in spread(1.0, 19.0, 4)]
    _compare_with_cobra(cobra_pfba, ich360, pts, min_feasible=12)


@pytest.mark.slow
def test_matches_cobra_pfba_on_ijo1366(ijo1366, cobra_pfba, spread):
    pts = [(g, o) for g in spread(1.0, 19.0, 5) for o in spread(1.0, 19.0, 4)]
    _compare_with_cobra(cobra_pfba, ijo1366, pts, min_feasible=12)


def test_solution_is_a_valid_split_flux(ecoli_core):
    """S v = 0, v+ and v- non-negative and complementary, inputs exactly -u, bounds respected."""
    solver = PFBASolver(ecoli_core)
    S = solver.stoichiometry
    r = len(solver.reaction_ids)
    lb = np.array([x.lower_bound for x in ecoli_core.reactions])
    ub = np.array([x.upper_bound for x in ecoli_core.reactions])
    for g, o in [(10.0, 15.0), (20.0, 0.0), (3.3, 7.7), (18.0, 20.0)]:
        pt = solver.solve([g, o])
        assert pt.status == "optimal"
        assert np.abs(S @ pt.fluxes).max() == pytest.approx(0.0, abs=1e-7)
        vp, vm = pt.split_fluxes[:r], pt.split_fluxes[r:]
        assert vp.min() >= 0 and vm.min() >= 0
        assert np.minimum(vp, vm).max() == pytest.approx(0.0, abs=1e-9)
        assert pt.flux("EX_glc__D_e") == pytest.approx(-g, rel=0, abs=1e-9)
        assert pt.flux("EX_o2_e") == pytest.approx(-o, rel=0, abs=1e-9)
        free = [j for j, x in enumerate(solver.reaction_ids) if x not in ("EX_glc__D_e", "EX_o2_e")]
        assert np.all(pt.fluxes[free] >= lb[free] - 1e-7) and np.all(pt.fluxes[free] <= ub[free] + 1e-7)
        assert pt.total_flux == pytest.approx(np.abs(pt.fluxes).sum(), rel=1e-12, abs=1e-9)


def test_relaxed_fluxes_go_to_zero_with_uptakes(ecoli_core):
    """Along a ray to the origin the relaxed solution shrinks continuously to zero flux."""
    solver = PFBASolver(ecoli_core)
    atpm_lb = ecoli_core.reactions.ATPM.lower_bound
    ts = [0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 1e-4, 0.0]
    totals, maint = [], []
    for t in ts:
        pt = solver.solve({"glucose": 4.0 * t, "oxygen": 6.0 * t})
        assert pt.status == "relaxed"
        totals.append(pt.total_flux)
        maint.append(pt.slack("maintenance_ATPM"))
    totals = np.array(totals)
    # total flux is proportional to the uptake scale (a linear map near the origin): no jump
    k = totals[0] / ts[0]
    for t, tot in zip(ts, totals):
        assert tot == pytest.approx(k * t, rel=1e-6, abs=1e-6)
    assert totals[-1] == pytest.approx(0.0, abs=1e-6)
    # the unmet maintenance demand rises to the whole lower bound at zero uptake
    assert np.all(np.diff(maint) >= -1e-9)
    assert maint[-1] == pytest.approx(atpm_lb, rel=1e-9, abs=1e-9)


def test_relaxed_boundary_is_continuous(ecoli_core):
    """Crossing from feasible to relaxed along glucose, growth and fluxes change continuously."""
    solver = PFBASolver(ecoli_core)
    gs = np.linspace(0.2, 1.2, 101)
    pts = [solver.solve({"glucose": g, "oxygen": 2.0}) for g in gs]
    status = [p.status for p in pts]
    assert "relaxed" in status and "optimal" in status
    F = np.array([p.fluxes for p in pts])
    jumps = np.abs(np.diff(F, axis=0)).max(axis=1)
    # step 0.01 mmol/gDW/h in glucose: no flux jumps by more than a few times the stoichiometric scale
    assert jumps.max() < 0.5


def test_unrelaxed_infeasible_point_is_clean(ecoli_core, cobra_pfba):
    solver = PFBASolver(ecoli_core, PFBASettings(relax=False))
    bad = solver.solve({"glucose": 0.0, "oxygen": 0.0})
    assert bad.status == "infeasible"
    assert np.isnan(bad.fluxes).all() and math.isnan(bad.growth)
    good = solver.solve({"glucose": 10.0, "oxygen": 15.0})
    ref = cobra_pfba(ecoli_core, {"glucose": 10.0, "oxygen": 15.0})
    assert good.status == "optimal"
    assert good.growth == pytest.approx(ref[0], rel=REL, abs=ABS_GROWTH)


def test_model_is_not_mutated(ecoli_core):
    before = model_hash(ecoli_core)
    bounds = [(r.lower_bound, r.upper_bound) for r in ecoli_core.reactions]
    solver = PFBASolver(ecoli_core)
    solver.solve({"glucose": 0.0, "oxygen": 0.0})
    solver.solve({"glucose": 20.0, "oxygen": 20.0})
    sample_pfba(ecoli_core, grid_points({"glucose": (0, 20, 10), "oxygen": (0, 20, 10)}), progress=False)
    assert model_hash(ecoli_core) == before
    assert [(r.lower_bound, r.upper_bound) for r in ecoli_core.reactions] == bounds
    assert ecoli_core.reactions.EX_glc__D_e.bounds == (-10.0, 1000.0)
    assert str(ecoli_core.objective.expression).startswith("1.0*Biomass_Ecoli_core")


def test_other_inputs_and_no_maintenance(ecoli_core, cobra_pfba):
    """Named inputs are general: acetate uptake on e_coli_core, no maintenance slack."""
    settings = PFBASettings(inputs={"acetate": "EX_ac_e", "oxygen": "EX_o2_e"}, maintenance_id=None)
    solver = PFBASolver(ecoli_core, settings)
    assert solver.input_names == ("acetate", "oxygen")
    assert solver.slack_names == ("acetate_shortfall", "acetate_excess", "oxygen_shortfall", "oxygen_excess")
    with ecoli_core:
        ecoli_core.reactions.EX_glc__D_e.lower_bound = 0.0
        ecoli_core.reactions.ATPM.lower_bound = 0.0
        solver = PFBASolver(ecoli_core, settings)
        ref = cobra_pfba(ecoli_core, {"acetate": 10.0, "oxygen": 15.0}, inputs=dict(settings.inputs))
    pt = solver.solve({"acetate": 10.0, "oxygen": 15.0})
    assert pt.status == "optimal"
    assert pt.growth == pytest.approx(ref[0], rel=REL, abs=ABS_GROWTH)
    assert pt.total_flux == pytest.approx(ref[1], rel=REL, abs=ABS_TOTAL)


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "inputs, fragment",
    [
        ({"glucose": -1.0, "oxygen": 5.0}, "non-negative"),
        ({"glucose": float("nan"), "oxygen": 5.0}, "finite"),
        ({"glucose": 1.0, "oxygen": float("inf")}, "finite"),
        ({"glucose": 1.0}, "missing ['oxygen']"),
        ({"glucose": 1.0, "oxygen": 2.0, "xylose": 1.0}, "unknown ['xylose']"),
        ([1.0, 2.0, 3.0], "one value per input"),
        ({"glucose": "abc", "oxygen": 1.0}, "must be a number"),
    ],
)
def test_bad_inputs_raise_clear_errors(ecoli_core, inputs, fragment):
    solver = PFBASolver(ecoli_core)
    with pytest.raises(InputError, match=None) as err:
        solver.solve(inputs)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_reaction_ids(ecoli_core):
    with pytest.raises(InputError, match="'EX_foo_e' is not a reaction of the model"):
        PFBASolver(ecoli_core, PFBASettings(inputs={"foo": "EX_foo_e"}))
    with pytest.raises(InputError, match="maintenance_id"):
        PFBASolver(ecoli_core, PFBASettings(maintenance_id="NGAM"))


def test_unknown_model():
    with pytest.raises(ModelLoadError, match="Shipped models"):
        load_model("no_such_model")
    with pytest.raises(ModelLoadError):
        PFBASolver("no_such_model")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (
            {"inputs": {}},
            "The 'inputs' parameter of PFBASettings must be a table of at least 1 item {name: a non-empty string}. Got {} instead.",
        ),
        (
            {"inputs": {"a": "EX_glc__D_e", "b": "EX_glc__D_e"}},
            "must be pairs without duplicate input reaction ids. Got ['EX_glc__D_e'] instead.",
        ),
        ({"maintenance_weight": -1.0}, "'maintenance_weight'"),
        ({"uptake_excess_weight": float("nan")}, "'uptake_excess_weight'"),
        ({"growth_tolerance": 0.1}, "'growth_tolerance'"),
        ({"relax": "yes"}, "'relax'"),
        ({"maintenance_id": "EX_o2_e"}, "'maintenance_id' parameter of PFBASettings must be a reaction other than the input reactions"),
    ],
)
def test_settings_validation(kwargs, fragment):
    with pytest.raises(SettingsError) as err:
        PFBASettings(**kwargs)
    assert fragment in str(err.value)


def test_settings_round_trip():
    s = PFBASettings(inputs={"glucose": "EX_glc__D_e"}, maintenance_weight=2.0)
    assert PFBASettings.from_dict(s.to_dict()) == s
    assert s.inputs == (("glucose", "EX_glc__D_e"),)
    with pytest.raises(SettingsError, match=r"Unknown key\(s\) \['speed'\] in PFBASettings"):
        PFBASettings.from_dict({"relax": True, "speed": 3})
