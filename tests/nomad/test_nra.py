"""NRA MILP: optimum vs brute-force LP enumeration, constraint plug-back, integer cuts, infeasibility."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linprog

from mpc_bio.nomad.nra import (
    NRAProblem,
    check_design,
    enumerate_designs,
    random_nra_problem,
    solve_nra,
)
from mpc_bio.nomad.nra_settings import NRASettings


def _pattern_optima(problem: NRAProblem, settings: NRASettings, max_size: int) -> dict[tuple, float]:
    """Best objective of every enzyme subset up to ``max_size`` and direction pattern.

    Each (subset, directions) pair is an LP in the subset's log changes, solved with scipy's
    linprog (HiGHS through scipy, not through Pyomo): an independent path to the MILP.
    Coupled groups act as one unit; excluded enzymes are left out. Keys are the sorted
    (enzyme, direction) pairs of the pattern (every member of a coupled group listed);
    infeasible patterns are left out.
    """
    ne = len(problem.enzyme_ids)
    index = {e: i for i, e in enumerate(problem.enzyme_ids)}
    excluded = {index[e] for e in settings.excluded_enzymes}
    units: list[list[int]] = [[index[e] for e in g] for g in settings.coupled_enzymes]
    grouped = {j for g in units for j in g}
    units += [[j] for j in range(ne) if j not in grouped]
    units = [u for u in units if not (set(u) & excluded)]
    up, down, dmin = settings.log_up_bound, settings.log_down_bound, settings.min_log_change
    lim = math.log(settings.max_concentration_fold)
    y = (
        problem.flux_control[problem.reaction_ids.index(problem.product_reaction)]
        - problem.flux_control[problem.reaction_ids.index(problem.substrate_reaction)]
    )
    g_row = problem.flux_control[problem.reaction_ids.index(problem.growth_reaction)]
    t = problem.stoichiometry.T @ problem.concentration_control
    ref = problem.log_displacement
    margin = np.minimum(settings.thermodynamic_margin, np.abs(ref) / 2)
    out: dict[tuple, float] = {}
    for k in range(1, max_size + 1):
        for subset in itertools.combinations(range(len(units)), k):
            cols = np.array([np.sum(np.eye(ne)[:, units[u]], axis=1) for u in subset]).T  # (ne, k)
            for signs in itertools.product((1, -1), repeat=k):
                bounds = [(dmin, up) if s > 0 else (-down, -dmin) for s in signs]
                a_ub, b_ub = [], []
                cx = problem.concentration_control @ cols
                a_ub += list(cx) + list(-cx)
                b_ub += [lim] * (2 * cx.shape[0])
                for r in range(len(ref)):
                    row = t[r] @ cols
                    if ref[r] < 0:
                        a_ub.append(row)
                        b_ub.append(-margin[r] - ref[r])
                    else:
                        a_ub.append(-row)
                        b_ub.append(ref[r] - margin[r])
                a_ub.append(-(g_row @ cols))
                b_ub.append(-math.log(1 - settings.max_growth_reduction))
                res = linprog(-(y @ cols), A_ub=np.array(a_ub), b_ub=np.array(b_ub), bounds=bounds, method="highs")
                if res.status == 0:
                    key = tuple(sorted((problem.enzyme_ids[j], s) for u, s in zip(subset, signs) for j in units[u]))
                    out[key] = -res.fun
    return out


def _brute_force(problem: NRAProblem, settings: NRASettings, max_size: int) -> float:
    """Best objective over all enzyme subsets up to ``max_size`` (the empty design scores 0)."""
    return max([0.0, *_pattern_optima(problem, settings, max_size).values()])


def _independent_violation(problem: NRAProblem, settings: NRASettings, d: np.ndarray) -> float:
    """Largest constraint violation of log changes d, computed with plain numpy."""
    viol = [0.0]
    viol.append(float(np.max(np.abs(problem.concentration_control @ d)) - math.log(settings.max_concentration_fold)))
    after = problem.log_displacement + problem.stoichiometry.T @ (problem.concentration_control @ d)
    ref = problem.log_displacement
    margin = np.minimum(settings.thermodynamic_margin, np.abs(ref) / 2)
    viol.append(float(np.max(np.where(ref < 0, after + margin, margin - after))))
    g = problem.reaction_ids.index(problem.growth_reaction)
    viol.append(math.log(1 - settings.max_growth_reduction) - float(problem.flux_control[g] @ d))
    viol.append(float(np.max(d)) - settings.log_up_bound)
    viol.append(float(np.max(-d)) - settings.log_down_bound)
    changed = np.abs(d) > 1e-9
    if changed.any():
        viol.append(settings.min_log_change - float(np.min(np.abs(d[changed]))))
    return max(viol)


@pytest.mark.parametrize(
    "seed, extra",
    [
        (0, {}),
        (3, {}),
        (7, {}),
        (5, {"allow_knockouts": True, "max_concentration_fold": 10.0}),
        (9, {"max_enzyme_down_fold": 2.0, "max_growth_reduction": 0.05}),
    ],
)
def test_milp_optimum_equals_brute_force(seed, extra):
    problem = random_nra_problem(7, 5, seed=seed)
    settings = NRASettings(max_interventions=2, **extra)
    design, record = solve_nra(problem, settings)
    assert record.status == "optimal"
    expected = _brute_force(problem, settings, max_size=2)
    assert design.objective == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert record.objective == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert len(design.enzymes) <= 2


def test_brute_force_with_exclusions_and_couplings():
    problem = random_nra_problem(7, 5, seed=11)
    free, _ = solve_nra(problem, NRASettings(max_interventions=2))
    # exclude the strongest enzyme of the free optimum and couple two others
    settings = NRASettings(max_interventions=2, excluded_enzymes=(free.enzymes[0],), coupled_enzymes=(("E5", "E6"),))
    design, record = solve_nra(problem, settings)
    assert record.status == "optimal"
    assert free.enzymes[0] not in design.enzymes
    assert design.objective == pytest.approx(_brute_force(problem, settings, 2), rel=1e-6, abs=1e-8)
    d = design.log_changes
    assert d[5] == pytest.approx(d[6], rel=0, abs=1e-9)


def test_enumeration_designs_satisfy_constraints_and_are_unique():
    problem = random_nra_problem(8, 6, seed=1)
    settings = NRASettings(max_interventions=3, enumeration_fraction=0.5, max_concentration_fold=2.0)
    result = enumerate_designs(problem, settings)
    assert result.status == "optimal"
    assert len(result.designs) >= 3
    patterns = set()
    for design in result.designs:
        d = np.asarray(design.log_changes)
        # plug EU/ED back: independent numpy check and the module's own check agree
        assert _independent_violation(problem, settings, d) <= 1e-7
        assert check_design(problem, settings, d).ok(tol=1e-7)
        assert len(design.enzymes) <= 3
        # recorded designs are within the threshold and the log-linear objective is consistent
        assert design.objective >= result.optimum - 0.5 * abs(result.optimum) - 1e-9
        assert design.objective == pytest.approx(float(problem.yield_control @ d), rel=1e-9, abs=1e-12)
        pattern = (tuple(sorted(design.enzymes)), design.directions)
        key = tuple(sorted(zip(design.enzymes, design.directions)))
        assert key not in patterns, f"design {pattern} returned twice"
        patterns.add(key)
    objectives = [d.objective for d in result.designs]
    assert objectives == sorted(objectives, reverse=True) or np.allclose(objectives, sorted(objectives, reverse=True), rtol=0, atol=1e-7)
    # the solve after the last recorded design fell below the threshold (or was infeasible)
    last = result.solves[-1]
    assert result.truncated or last.status != "optimal" or last.objective < result.threshold
    assert len(result.solves) == len(result.designs) + (0 if result.truncated else 1)
    assert all(s.time_s >= 0 for s in result.solves)


def test_enumeration_stops_at_max_designs():
    problem = random_nra_problem(8, 6, seed=1)
    result = enumerate_designs(problem, NRASettings(enumeration_fraction=0.9, max_designs=2))
    assert result.truncated
    assert len(result.designs) == 2


def test_enumeration_with_highs_interface_matches_appsi():
    problem = random_nra_problem(7, 5, seed=2)
    a = enumerate_designs(problem, NRASettings(max_interventions=2, enumeration_fraction=0.3))
    b = enumerate_designs(problem, NRASettings(max_interventions=2, enumeration_fraction=0.3, solver="highs"))
    assert a.optimum == pytest.approx(b.optimum, rel=1e-7, abs=1e-9)
    assert sorted(d.objective for d in a.designs) == pytest.approx(sorted(d.objective for d in b.designs), rel=1e-6, abs=1e-8)


def test_zero_interventions_gives_the_reference_strain():
    problem = random_nra_problem(6, 4, seed=4)
    result = enumerate_designs(problem, NRASettings(max_interventions=0))
    assert result.status == "optimal"
    assert result.optimum == pytest.approx(0.0, abs=1e-12)
    assert result.designs[0].enzymes == ()


def test_infeasible_imposed_design_gives_a_status_not_a_crash():
    problem = random_nra_problem(6, 4, seed=5)
    # forcing every enzyme to change by at least the full 5-fold is infeasible with 1.01-fold concentrations
    settings = NRASettings(max_concentration_fold=1.01, min_log_change=math.log(4.9))
    design, record = solve_nra(problem, settings, members=problem.enzyme_ids)
    assert design is None
    assert record.status == "infeasible"


def test_unknown_solver_and_bad_inputs_raise_clear_errors():
    problem = random_nra_problem(6, 4, seed=5)
    with pytest.raises(RuntimeError, match="not available"):
        solve_nra(problem, NRASettings(solver="no_such_solver_xyz"))
    with pytest.raises(ValueError, match="not enzymes"):
        solve_nra(problem, NRASettings(excluded_enzymes=("nope",)))
    with pytest.raises(ValueError, match="max_concentration_fold"):
        NRASettings(max_concentration_fold=0.5)
    with pytest.raises(ValueError, match="shape"):
        NRAProblem(
            enzyme_ids=("a",),
            reaction_ids=("r", "s"),
            metabolite_ids=("m",),
            concentration_control=np.zeros((2, 1)),
            flux_control=np.zeros((2, 1)),
            stoichiometry=np.zeros((1, 2)),
            log_displacement=np.zeros(2),
            product_reaction="r",
            substrate_reaction="s",
        )


def test_growth_and_concentration_constraints_bind():
    """Tightening the constraints can only lower the optimum (monotonicity)."""
    problem = random_nra_problem(7, 5, seed=8)
    loose = solve_nra(problem, NRASettings(max_interventions=2, max_concentration_fold=10.0))[0].objective
    tight = solve_nra(problem, NRASettings(max_interventions=2, max_concentration_fold=1.2))[0].objective
    assert tight <= loose + 1e-9
    no_growth_loss = solve_nra(problem, NRASettings(max_interventions=2, max_growth_reduction=0.0))[0]
    g = problem.reaction_ids.index("R2")
    assert float(problem.flux_control[g] @ no_growth_loss.log_changes) >= -1e-9


@pytest.mark.parametrize("seed", [1, 5])
def test_feasible_and_optimal_enumeration_strategies_give_the_same_designs(seed):
    """The default strategy (first design above the threshold per cut, then its fold changes
    optimised with the pattern fixed) records exactly the designs of the best-first strategy:
    same up/down patterns, objectives within 1e-7 (ln units), best first; and every pattern's
    objective equals its brute-force LP optimum (scipy, independent of Pyomo) within 1e-7."""
    problem = random_nra_problem(8, 6, seed=seed)
    base = {"max_interventions": 2, "enumeration_fraction": 0.5, "max_concentration_fold": 2.0}
    fast = enumerate_designs(problem, NRASettings(**base))
    slow = enumerate_designs(problem, NRASettings(**base, enumeration_strategy="optimal"))
    key = lambda d: tuple(sorted(zip(d.enzymes, d.directions)))
    a = {key(d): d.objective for d in fast.designs}
    b = {key(d): d.objective for d in slow.designs}
    assert len(a) == len(fast.designs) >= 3
    assert set(a) == set(b)
    for k, value in a.items():
        assert value == pytest.approx(b[k], abs=1e-7)
    objectives = [d.objective for d in fast.designs]
    assert np.all(np.diff(objectives) <= 1e-9)
    assert [d.rank for d in fast.designs] == list(range(len(fast.designs)))
    # each pattern's objective is the LP optimum of that pattern (independent scipy LP)
    settings = NRASettings(**base)
    for d in fast.designs:
        s = NRASettings(**{**base, "excluded_enzymes": tuple(e for e in problem.enzyme_ids if e not in d.enzymes)})
        # brute force over subsets of the pattern's enzymes only: the best uses all of them
        assert _brute_force(problem, s, len(d.enzymes)) >= d.objective - 1e-7
        assert check_design(problem, settings, np.asarray(d.log_changes)).ok(tol=1e-7)


@pytest.mark.parametrize(
    "seed, extra",
    [(1, {}), (4, {"max_concentration_fold": 2.0}), (6, {"coupled_enzymes": (("E1", "E4"),)}), (2, {"max_interventions": 2})],
)
def test_enumeration_returns_exactly_the_brute_force_patterns_within_the_threshold(seed, extra):
    """The enumerated designs are exactly the up/down patterns (<= N enzymes) whose LP optimum
    lies within the threshold, each pattern solved independently with scipy: same set of
    patterns, objectives within 1e-7 (ln units). This pins the design set whatever the MILP
    formulation, cuts (sparse for full-size patterns, dense otherwise) or solver options."""
    problem = random_nra_problem(8, 5, seed=seed)
    settings = NRASettings(**{"max_interventions": 3, "enumeration_fraction": 0.3, **extra})
    result = enumerate_designs(problem, settings)
    assert result.status == "optimal" and not result.truncated
    optima = _pattern_optima(problem, settings, settings.max_interventions)
    assert max(optima.values()) == pytest.approx(result.optimum, rel=1e-7, abs=1e-9)
    expected = {k: v for k, v in optima.items() if v >= result.threshold + 1e-7}
    borderline = {k for k, v in optima.items() if abs(v - result.threshold) <= 1e-7}
    got = {tuple(sorted((e, s) for e, s in zip(d.enzymes, d.directions))): d.objective for d in result.designs}
    assert len(got) == len(result.designs) >= 3
    assert set(expected) <= set(got) <= set(expected) | borderline
    for k, v in got.items():
        assert v == pytest.approx(optima[k], rel=0, abs=1e-7)
