"""Design ranking across an ensemble and the MCA baseline, on small synthetic NRA problems."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linprog

from mpc_bio.nomad.nra import check_design, random_nra_problem
from mpc_bio.nomad.nra_settings import NRASettings, RankingSettings
from mpc_bio.nomad.ranking import (
    enumerate_ensemble_designs,
    mca_baseline,
    rank_designs,
    unique_designs,
)


def _imposed_lp(problem, settings, members, dmin):
    """Best objective with exactly ``members`` changed (|change| >= dmin, any direction): scipy LPs."""
    ne = len(problem.enzyme_ids)
    idx = [problem.enzyme_ids.index(e) for e in members]
    y = problem.yield_control
    t = problem.stoichiometry.T @ problem.concentration_control
    ref = problem.log_displacement
    margin = np.minimum(settings.thermodynamic_margin, np.abs(ref) / 2)
    g = problem.flux_control[problem.reaction_ids.index(problem.growth_reaction)]
    lim = math.log(settings.max_concentration_fold)
    best = -math.inf
    cols = np.eye(ne)[:, idx]
    for signs in itertools.product((1, -1), repeat=len(idx)):
        bounds = [(dmin, settings.log_up_bound) if s > 0 else (-settings.log_down_bound, -dmin) for s in signs]
        cx = problem.concentration_control @ cols
        a = list(cx) + list(-cx)
        b = [lim] * (2 * len(cx))
        for r in range(len(ref)):
            row = t[r] @ cols
            a.append(row if ref[r] < 0 else -row)
            b.append(-margin[r] - ref[r] if ref[r] < 0 else ref[r] - margin[r])
        a.append(-(g @ cols))
        b.append(-math.log(1 - settings.max_growth_reduction))
        res = linprog(-(y @ cols), A_ub=np.array(a), b_ub=np.array(b), bounds=bounds, method="highs")
        if res.status == 0:
            best = max(best, -res.fun)
    return best


@pytest.fixture(scope="module")
def ensemble():
    problems = [random_nra_problem(7, 5, seed=s, model_id=f"m{s}") for s in (21, 22, 23)]
    settings = NRASettings(max_interventions=2, enumeration_fraction=0.2)
    designs = enumerate_ensemble_designs(problems, settings)
    ranking = rank_designs(problems, designs.unique, settings, RankingSettings(min_log_change=1e-6))
    return problems, settings, designs, ranking


def test_unique_designs_by_membership(ensemble):
    _, _, designs, _ = ensemble
    memberships = [u.membership for u in designs.unique]
    assert len(memberships) == len(set(memberships))
    all_members = {d.membership for e in designs.enumerations for d in e.designs if d.enzymes}
    assert set(memberships) == all_members
    assert sum(u.count for u in designs.unique) == sum(1 for e in designs.enumerations for d in e.designs if d.enzymes)


def test_ranking_matrix_matches_independent_lps(ensemble):
    problems, settings, designs, ranking = ensemble
    assert ranking.objective.shape == (len(designs.unique), len(problems))
    for i, design in enumerate(ranking.designs):
        for k, problem in enumerate(problems):
            expected = _imposed_lp(problem, settings, design.membership, 1e-6)
            if math.isinf(expected):
                assert ranking.status[i, k] == "infeasible"
                assert math.isnan(ranking.objective[i, k])
            else:
                assert ranking.status[i, k] == "optimal"
                assert ranking.objective[i, k] == pytest.approx(expected, rel=1e-6, abs=1e-8)
                d = ranking.log_changes[i, k]
                members = [problem.enzyme_ids.index(e) for e in design.membership]
                others = np.setdiff1d(np.arange(len(d)), members)
                assert np.all(d[others] == 0.0)
                assert np.all(np.abs(d[members]) >= 1e-6 - 1e-12)
                check = check_design(problem, NRASettings(max_interventions=2, min_log_change=1e-6), d)
                assert check.ok(tol=1e-7)


def test_ranking_is_sorted_and_at_least_source_objective(ensemble):
    problems, _, designs, ranking = ensemble
    assert np.all(np.diff(ranking.mean_objective) <= 1e-12)
    filled = np.where(np.isfinite(ranking.objective), ranking.objective, 0.0)
    assert ranking.mean_objective == pytest.approx(filled.mean(axis=1), rel=1e-12, abs=1e-12)
    ids = [p.model_id for p in problems]
    for i, design in enumerate(ranking.designs):
        for src in set(design.source_models):
            # enforcing the membership relaxes the enumeration constraints: never worse
            best_src = max(
                d.objective for e in designs.enumerations if e.model_id == src for d in e.designs if d.membership == design.membership
            )
            assert ranking.objective[i, ids.index(src)] >= best_src - 1e-7
    frame = ranking.to_frame()
    assert list(frame["rank"]) == list(range(1, len(ranking.designs) + 1))
    assert ranking.matrix_frame().shape == ranking.objective.shape


def test_mca_baseline_picks_top_yield_coefficients():
    problem = random_nra_problem(8, 5, seed=31)
    design, violations = mca_baseline(problem, fold=5.0, size=3, excluded=("E0",))
    y = problem.yield_control.copy()
    y[0] = 0.0
    top = set(np.argsort(-np.abs(y))[:3])
    assert {problem.enzyme_ids.index(e) for e in design.enzymes} == top
    assert design.objective == pytest.approx(math.log(5.0) * np.sort(np.abs(y))[-3:].sum(), rel=1e-12, abs=1e-12)
    for e, v in zip(design.enzymes, design.log_fold_changes):
        assert math.copysign(1, v) == math.copysign(1, y[problem.enzyme_ids.index(e)])
        assert abs(v) == pytest.approx(math.log(5.0), rel=1e-12)
    assert set(violations) == {"concentration", "thermodynamics", "growth"}
    with pytest.raises(ValueError, match="fold"):
        mca_baseline(problem, fold=0.5)


def test_rank_designs_rejects_mismatched_models():
    a = random_nra_problem(6, 4, seed=1)
    b = random_nra_problem(7, 4, seed=2)
    with pytest.raises(ValueError, match="share enzyme ids"):
        rank_designs([a, b], unique_designs([]))
