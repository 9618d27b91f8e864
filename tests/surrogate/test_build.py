"""One-command surrogate builds: kink lines found automatically, the CLI end to end, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mpc_bio.metabolism.pfba import InputError, PFBASolver
from mpc_bio.metabolism.sampling import grid_points, sample_pfba
from mpc_bio.metabolism.settings import PFBASettings, SettingsError
from mpc_bio.metabolism.switches import find_kink_lines, switch_points
from mpc_bio.surrogate.build import BuildSettings, build_surrogate
from tests.surrogate.conftest import tiny_build_settings

#: Grid of the kink-line test: e_coli_core, glucose x oxygen 0-10 step 0.5 (441 points).
STEP = 0.5
AXES = {"glucose": (0.0, 10.0, STEP), "oxygen": (0.0, 10.0, STEP)}


@pytest.fixture(scope="module")
def kink_search(_ecoli_core_session):
    settings = PFBASettings(tie_break="l2")
    grid = sample_pfba(_ecoli_core_session, grid_points(AXES), settings, progress=False)
    solver = PFBASolver(_ecoli_core_session, settings)
    # 16 lines: the sharpest 8 lie in two tight clusters (a ramp and a fan), too close to each other for the bisection check
    return solver, find_kink_lines(solver, grid, max_lines=16, max_solves=15_000, seed=0)


def test_kink_lines_agree_with_independent_bisection(kink_search):
    """Each line found from the grid is where an independent bisection (``switch_points``, to 1e-10
    mmol/gDW/h, along the input the line depends on most, over +-0.02 mmol/gDW/h around the line)
    finds one of its reactions switching, at three points along the line, within the extent of its
    located points and away from the other lines
    (a reaction may switch along only a piece of a line, so any of the line's reactions counts).
    Tolerance: the search's straightness, 1e-3 grid steps (5e-4 mmol/gDW/h), absolute."""
    solver, search = kink_search
    assert len(search.lines) >= 3
    tol = 1e-3 * STEP
    names = solver.input_names
    checked = 0
    for kl in search.lines:
        assert kl.max_distance <= tol
        reactions = [f[: -len(" sign")] for f in kl.features if f.endswith(" sign")]
        if not reactions:
            continue
        a, c = np.asarray(kl.line[:-1]), kl.line[-1]
        along = int(np.argmax(np.abs(a)))
        other = 1 - along
        # points of the line inside the box, parametrised by the other input
        xs = np.linspace(0.0, 10.0, 41)
        ys = (c - a[other] * xs) / a[along]
        inside = (ys > 0.25) & (ys < 9.75) & (xs > 0.25) & (xs < 9.75)
        cand = np.zeros((int(inside.sum()), 2))
        cand[:, other], cand[:, along] = xs[inside], ys[inside]
        # within the extent where the search located the boundary (a boundary may end at a vertex)
        direction = np.array([-a[1], a[0]])
        proj = kl.points @ direction
        t = cand @ direction
        cand = cand[(t >= proj.min()) & (t <= proj.max())]
        others = [o for o in search.lines if o is not kl]
        far = np.array([all(abs(o.distance(p[None])[0]) > 0.2 for o in others) for p in cand], dtype=bool)
        cand = cand[far]
        if len(cand) < 3:
            continue
        for p in cand[[0, len(cand) // 2, -1]]:
            delta = 0.02
            distances = []
            for reaction in reactions:
                found = switch_points(
                    solver,
                    reaction,
                    names[along],
                    [p],
                    p[along] - delta,
                    p[along] + delta,
                    flux_tol=search.settings["flux_tol"],
                    xtol=1e-10,
                )
                if np.all(np.isfinite(found)):
                    distances.append(abs(kl.distance(found)[0]))
            assert distances and min(distances) <= tol, (kl.line, kl.features, p, distances)
        checked += 1
    assert checked >= 2


def test_kink_search_records_what_it_did(kink_search):
    _, search = kink_search
    d = search.to_dict()
    assert d["n_solves"] > 0 and d["n_features_switching"] > 0
    assert len(search.kink_lines) == len(search.lines) <= 16
    for line in search.kink_lines:
        assert np.linalg.norm(line[:-1]) == pytest.approx(1.0, abs=1e-12, rel=0)
    json.dumps(d)


def test_kink_jump_matches_one_sided_slopes(kink_search, _ecoli_core_session):
    """The sharpness of each line (:attr:`KinkLine.jump`) against slopes fitted independently on each
    side of its located points: least squares through pFBA solves at 1/4, 1/2 and 1 of a distance
    (0.3 of the distance to the nearest other line, at most 0.005 grid step) along the normal, the
    located point included on both sides. Lines come sharpest first and the dropped ones either
    beyond ``max_lines`` or below ``min_jump``. Tolerance: 1e-3 relative plus 1e-6 absolute (pFBA
    fluxes are exact to ~1e-9 mmol/gDW/h; fluxes are piecewise linear between kinks)."""
    solver, search = kink_search
    settings = search.settings
    grid = sample_pfba(_ecoli_core_session, grid_points(AXES), PFBASettings(tie_break="l2"), progress=False)
    ranges = np.ptp(np.asarray(grid.fluxes), axis=0)
    ranges = np.maximum(ranges, 1e-3 * ranges.max())
    jumps = [kl.jump for kl in search.lines]
    assert jumps == sorted(jumps, reverse=True) and jumps[-1] >= settings["min_jump"]
    for d in search.dropped:
        assert (d["reason"] == "kink below min_jump") == (d["jump"] < settings["min_jump"])
    lines = list(search.lines) + []
    for kl in search.lines[:4]:
        n = np.asarray(kl.line[:-1])
        best = 0.0
        for x in kl.points[:: max(1, len(kl.points) // 3)]:
            others = [abs(o.distance(x[None])[0]) for o in lines if o is not kl]
            eps = min(0.3 * min(others, default=np.inf), 0.005 * STEP, *(x - 0.0), *(10.0 - x))
            if eps < 1e-5 * STEP:
                continue
            t = np.array([0.25, 0.5, 1.0]) * eps
            side = []
            for sign in (-1.0, 1.0):
                v = np.array([solver.solve(dict(zip(solver.input_names, x + sign * ti * n))).fluxes for ti in t])
                v0 = solver.solve(dict(zip(solver.input_names, x))).fluxes
                tt = np.concatenate([[0.0], sign * t])
                side.append(np.polyfit(tt, np.vstack([v0, v]), 1)[0])
            change = np.abs(side[1] - side[0]) * STEP / ranges
            change[list(solver.problem.input_index)] = 0.0
            best = max(best, float(change.max()))
        assert best <= kl.jump * (1 + 1e-3) + 1e-6, (kl.features, best, kl.jump)
        assert best >= 0.5 * kl.jump, (kl.features, best, kl.jump)


def test_find_kink_lines_rejects_bad_parameters(kink_search):
    solver, _ = kink_search
    grid = sample_pfba(solver.problem, grid_points({"glucose": (0, 2, 1.0), "oxygen": (0, 2, 1.0)}), progress=False)
    with pytest.raises(ValueError, match="points_per_line"):
        find_kink_lines(solver, grid, points_per_line=1)


def test_build_settings_errors():
    with pytest.raises(SettingsError, match="non-empty range"):
        BuildSettings(box=(("glucose", 5.0, 5.0),))
    with pytest.raises(SettingsError, match="naming the inputs"):
        BuildSettings(box=(("ammonium", 0.0, 5.0),))
    with pytest.raises(SettingsError, match="time_budget_min"):
        BuildSettings(time_budget_min=0)
    s = BuildSettings(inputs={"glucose": "EX_glc__D_e", "ammonium": "EX_nh4_e"}, box=(("ammonium", 0, 10),))
    assert s.box == (("glucose", 0.0, 20.0), ("ammonium", 0.0, 10.0))
    assert BuildSettings.from_dict(s.to_dict()) == s


def test_unknown_exchange_is_a_clear_error(ecoli_core):
    with pytest.raises(InputError, match="EX_nothing_e"):
        build_surrogate(ecoli_core, BuildSettings(inputs={"glucose": "EX_nothing_e", "oxygen": "EX_o2_e"}), progress=False)


def test_build_tiny_leaves_model_unchanged_and_reports(ecoli_core, tmp_path):
    from mpc_bio.surrogate import load_surrogate

    bounds = [(r.id, r.bounds) for r in ecoli_core.reactions]
    res = build_surrogate(ecoli_core, tiny_build_settings(box=(("glucose", 0, 10), ("oxygen", 0, 10))), tmp_path / "art", progress=False)
    assert [(r.id, r.bounds) for r in ecoli_core.reactions] == bounds
    r = res.report
    for key in (
        "wall_s",
        "cpu_s",
        "n_pfba_points",
        "growth_max_abs_err_frac",
        "worst_reaction_max_err_frac",
        "frac_points_beyond_2pct",
        "n_fresh_points",
        "kink_lines",
        "budget_hit",
        "time_budget_s",
    ):
        assert key in r
    assert r["hand_constants"] == 0
    assert r["n_fresh_points"] == 100
    assert r["plan"]["grid_per_axis"] == 11
    sur = load_surrogate(tmp_path / "art")
    assert np.allclose(sur.domain_high, [10, 10])
    assert "build_fresh_points" in sur.metrics
    saved = json.loads((tmp_path / "art" / "build_report.json").read_text())
    assert saved["n_pfba_points"] == r["n_pfba_points"]


def test_cli_build_surrogate_end_to_end(tmp_path, capsys):
    from mpc_bio.cli import main
    from mpc_bio.surrogate import load_surrogate

    out = tmp_path / "cli"
    rc = main(
        [
            "build-surrogate",
            "textbook",
            "--out",
            str(out),
            "--inputs",
            "glucose=EX_glc__D_e",
            "--inputs",
            "ammonium=EX_nh4_e",
            "--box",
            "glucose=0:10",
            "--box",
            "ammonium=0:5",
            "--time-budget",
            "0.2",
            "--hidden",
            "16,16",
            "--fresh-points",
            "50",
            "--no-progress",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_fresh_points"] == 50
    sur = load_surrogate(out)
    assert sur.input_names == ("glucose", "ammonium")
    assert np.allclose(sur.domain_high, [10, 5])


def test_cli_build_surrogate_bad_inputs(tmp_path, capsys):
    from mpc_bio.cli import main

    rc = main(["build-surrogate", "e_coli_core", "--out", str(tmp_path / "x"), "--inputs", "glucose=EX_nothing_e"])
    assert rc == 2
    assert "EX_nothing_e" in capsys.readouterr().err
    rc = main(["build-surrogate", "e_coli_core", "--out", str(tmp_path / "x"), "--box", "glucose=3:1"])
    assert rc == 2
    assert "non-empty range" in capsys.readouterr().err
    rc = main(["build-surrogate", "e_coli_core", "--out", str(tmp_path / "x"), "--box", "glucose=3"])
    assert rc == 2
    assert "LOW:HIGH" in capsys.readouterr().err


@pytest.mark.slow
def test_build_e_coli_core_short_budget(tmp_path):
    """A 3-minute build of the default box: the pipeline reaches a usable net (loose bounds: the
    budget is short, and on a loaded machine its kink search may end before a line is confirmed;
    the accuracy of longer budgets is in benchmarks/results/build_surrogate.json)."""
    res = build_surrogate("e_coli_core", BuildSettings(time_budget_min=3.0), tmp_path / "art", progress=False)
    assert res.report["kink_search"]["n_features_switching"] > 0
    assert res.report["growth_max_abs_err_frac"] < 0.1
    assert res.report["n_fresh_points"] == 2000


def test_a_candidate_on_a_found_line_joins_it_with_three_bisections():
    """``_joins_found_line``: a candidate whose grid edges the found line x + y = 5 crosses joins it
    (feature and edges added) after exactly three bisections (its two ends and its middle), which
    lie on the line; a candidate switching on the parallel line x + y = 5.3 (0.3 grid steps away,
    the same grid edges mostly) is told apart by those bisections (distance 0.3 / sqrt 2 >
    tolerance 1e-3) and fitted on its own. Closed form: ``locate`` returns the crossing of the
    edge with the candidate's true line."""
    from mpc_bio.metabolism.switches import _joins_found_line

    X = np.array([[i, j] for i in range(11) for j in range(11)], dtype=float)  # unit grid 0..10
    step = np.ones(2)
    # edges along the x axis crossing x + y = 5 (start nodes with x < 5 - y < x + 1)
    group = np.array([[i * 11 + j, 0] for i in range(11) for j in range(11) if i < 5 - j + 0.25 < i + 1])
    order = np.arange(len(group))
    n = np.array([1.0, 1.0]) / np.sqrt(2)
    found = {"line": np.array([*n, 5.0 / np.sqrt(2)]), "points": np.zeros((0, 2)), "features": ["A sign"], "edges": set()}

    def locator(c):
        calls = []

        def locate(node, ax):
            calls.append(node)
            p = X[node].copy()
            p[ax] = c - p[1 - ax]  # the crossing of x + y = c on this edge
            return p

        return locate, calls

    locate, calls = locator(5.0)
    assert _joins_found_line([found], group, order, X, step, locate, 1e-3, "B sign")
    assert len(calls) == 3 and found["features"] == ["A sign", "B sign"] and len(found["edges"]) == len(group)
    np.testing.assert_allclose(found["points"] @ n, 5.0 / np.sqrt(2), rtol=0, atol=1e-12)
    locate, calls = locator(5.3)
    assert not _joins_found_line([found], group, order, X, step, locate, 1e-3, "C sign")
    assert len(calls) == 3 and "C sign" not in found["features"]
    assert not _joins_found_line([], group, order, X, step, locate, 1e-3, "C sign")


@pytest.mark.slow
def test_ctrl_c_during_training_stops_the_build(tmp_path):
    """SIGINT while `mpc-bio build-surrogate` trains: the training keeps its best weights as it does
    for `train`, but the build stops there (exit 130, one line naming the interrupt) instead of
    testing and writing an artifact as if nothing had happened; no output folder is left."""
    import signal

    from tests.signals import signal_when

    out = tmp_path / "art"
    args = ["build-surrogate", "e_coli_core", "--out", str(out), "--time-budget", "2", "--hidden", "16,16", "--fresh-points", "50"]
    rc, stdout, err = signal_when(args, "training: ", signal.SIGINT)
    assert rc == 130, err[-2000:]
    assert "interrupted (SIGINT)" in err and "its output was not written" in err, err[-2000:]
    assert "{" not in stdout  # the plan only, no summary of a build that did not finish
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
