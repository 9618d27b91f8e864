"""Robust feed optimisation on the kinetic fed-batch by direct collocation (Radau, IPOPT).

The feed is piecewise constant on ``n_intervals`` equal intervals; each interval is cut into
``elements_per_interval`` finite elements with ``collocation_deg`` Radau points each (Radau IIA
collocation is L-stable and stiffly accurate, which the kinetic models need: the fastest
intracellular modes have time constants of 1e-8 h next to a batch of hours). What makes the NLP
solvable:

- **states in linear scale, bounded below by 0**: every state x is collocated as
  y = x / x_nom, x_nom its largest value over the start simulation (floor 1e-3), with the bound
  y >= 0 (IPOPT keeps its iterates strictly inside: ``bound_relax_factor = 0``), so the rate
  laws never see a negative concentration. Logarithmic states (y = ln x) would turn every fast
  near-equilibrium reaction into an exponential with curvature ~ h * 1e8, whose Hessian IPOPT
  can only regularise by 1e10-1e18; in linear scale the mass-action and Michaelis-Menten terms
  are mildly nonlinear;
- **initial guess from a simulation**: every collocation point starts at the CVODES solution
  under the initial feed, polished element by element into a solution of the NLP's own Radau
  equations where Newton (then IPOPT on the element's square system) succeeds;
- **worst case by an epigraph variable**: max t subject to t <= n_P,m(T) for every member m
  (``"worst"``); ``"mean"`` maximises the mean of n_P,m(T) directly;
- **IPOPT options**: exact Hessian, monotone barrier, small ``bound_push`` / ``bound_frac``
  (the feed optimum sits on its bounds), ``max_iter`` from the settings.

Constraints (hard): the glucose concentration n_glc,m / V <= ``glucose_max`` (mM) at every
collocation point of every member, V(T) <= ``volume_max`` (L), feed bounds (L/h). The optimum is
then re-simulated with CVODES (:func:`~mpc_bio.codesign.simulation.simulate_product_amounts`):
the reported objective is the simulated one, and the relative gap between the collocation
objective and the simulation is returned as ``FeedOptimum.simulation_mismatch`` (the
discretisation error). If the re-simulated optimum breaks the glucose limit by more than
``collocation_glucose_tolerance`` or is worse than the (feasible) start, the start is kept and
the status says so: a run with ``method = "collocation"`` never reports a collocation artefact.

Where it works: in a smooth regime (glucose never exhausted) every element of the start is
solved and IPOPT converges to the single-shooting optimum, verified by CVODES
(``test_collocation_and_shooting_agree_on_a_tiny_case``). Through glucose exhaustion the
intracellular network collapses within minutes (concentrations 1e-10 to 2e3 of the reference,
fastest modes 2e8 /h); the Radau equations of the elements there have no solution near the
trajectory on affordable meshes (resolving the collapse needs elements of about 1e-3 h, NLPs of
1e5-1e6 variables), IPOPT stops at ``max_iter``, and the verified feed can be better or worse
than single shooting's: the problem has several local optima. Hence
:func:`mpc_bio.codesign.feed.optimize_feed` with ``method = "collocation"`` runs, by default
(``collocation_start = "both"``), single shooting, collocation from the initial feed and
collocation from the shooting optimum, and keeps the best CVODES-verified feed.
"""

from __future__ import annotations

import time

import casadi as ca
import numpy as np
from mpc_bio.interrupts import check_interrupt
from mpc_bio.ipopt_options import ipopt_options

from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.collocation import radau_points, radau_residuals
from mpc_bio.codesign.optimum import FeedOptimum, member_objective, robust_mode
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.codesign.simulation import feasible_start, simulate_product_amounts, simulate_states

__all__ = ["collocation_times", "optimize_feed_collocation"]


def collocation_times(settings: FeedSettings) -> tuple[np.ndarray, np.ndarray]:
    """Element start times (n_el,) and collocation times (n_el, deg) of the batch (h)."""
    n_el = settings.n_intervals * settings.elements_per_interval
    h = settings.batch_time / n_el
    tau = radau_points(settings.collocation_deg)
    starts = np.arange(n_el) * h
    return starts, starts[:, None] + h * tau[None, :]


def _radau_start(element: ca.Function, y_el: np.ndarray, y0: np.ndarray, settings: FeedSettings, feed: np.ndarray):
    """A start that satisfies the collocation equations where it can: the NLP's own Radau scheme
    integrated element by element under ``feed`` (Newton from the CVODES values; if it fails or
    leaves y >= 0, IPOPT on the same square system with y >= 0). An element neither solves keeps
    the CVODES values (and the next one starts from CVODES again); their number is returned.

    ``y_el`` (n_el, d + 1, n_x): scaled CVODES states at each element's start and collocation points.
    """
    n_el, d1, nx = y_el.shape
    d, M = d1 - 1, settings.elements_per_interval
    yc = ca.SX.sym("yc", nx * d)
    par = ca.SX.sym("par", nx + 1)
    res = element(par[:nx], ca.reshape(yc, nx, d), par[nx])[0]
    # the stiffest rows carry coefficients h * 1e8: residuals below 1e-7 are at round-off
    rf = ca.rootfinder(
        "radau_step", "newton", ca.Function("radau_residual", [yc, par], [res]), {"abstol": 1e-7, "max_iter": 60, "error_on_fail": True}
    )
    fb = ca.nlpsol(
        "radau_step_ipopt",
        "ipopt",
        {"x": yc, "p": par, "f": 0, "g": res},
        ipopt_options(200, 1e-9, **{"ipopt.bound_relax_factor": 0.0, "ipopt.honor_original_bounds": "yes"}),
    )
    y_col = y_el[:, 1:, :].copy()
    yk = np.asarray(y0, dtype=float)
    n_fail = 0
    for k in range(n_el):
        p = np.concatenate([yk, [feed[k // M]]])
        sol = None
        try:
            sol = np.asarray(rf(y_col[k].reshape(-1), p)).reshape(d, nx)
        except RuntimeError:
            check_interrupt()
        if sol is None or not np.all(np.isfinite(sol)) or np.any(sol < 0):
            r = fb(x0=np.maximum(y_col[k].reshape(-1), 0.0), p=p, lbg=0, ubg=0, lbx=0)
            check_interrupt()
            sol = np.asarray(r["x"]).reshape(d, nx) if fb.stats()["success"] else None
        if sol is not None:
            y_col[k] = sol
            yk = sol[-1]
        else:
            n_fail += 1
            yk = y_el[k + 1, 0] if k + 1 < n_el else y_col[k][-1]
    return y_col, n_fail


def _discretise(km: KineticControlModel, settings: FeedSettings, feed: np.ndarray):
    """The Radau element function, the state scales and the Radau start under ``feed``.

    Returns ``(element, x_nom, y_col, n_fail)``: ``element(y0, yc, F)`` gives the collocation
    residuals (n_x d) and the scaled glucose margins (n_members d) of one element, in the
    variables y = x / x_nom; ``y_col`` (n_el, d, n_x) the start at the collocation points;
    ``n_fail`` the elements whose equations were not solved (CVODES values kept there).
    """
    N, M, d = settings.n_intervals, settings.elements_per_interval, settings.collocation_deg
    T = settings.batch_time
    n_el = N * M
    h = T / n_el
    m = km.model
    nx = m.n_x
    iv, gi = km.volume_index, list(km.glucose_index)
    gmax, vmax = settings.glucose_max, settings.volume_max
    starts, tc = collocation_times(settings)
    # CVODES solution under the start feed at every element start and collocation point
    grid = np.concatenate([np.column_stack([starts, tc]).reshape(-1), [T]])
    sim = simulate_states(km, settings, feed, grid)  # (n_grid, nx)
    x_nom = np.maximum(np.max(np.abs(sim), axis=0), 1e-3)
    y_el = (sim[:-1] / x_nom).reshape(n_el, d + 1, nx)
    ys = ca.SX.sym("y0", nx)
    yc = ca.SX.sym("yc", nx, d)
    u = ca.SX.sym("F")
    p = ca.DM(m.param_values)
    nom = ca.DM(x_nom)
    res = radau_residuals(lambda y, j: m.rhs(y * nom, u, p) / nom, ys, [yc[:, j] for j in range(d)], h)
    marg = []
    for j in range(d):
        xj = yc[:, j] * nom
        marg.append(ca.vertcat(*[(xj[i] - gmax * xj[iv]) / (gmax * vmax) for i in gi]))
    element = ca.Function("kinetic_radau_element", [ys, yc, u], [ca.vertcat(*res), ca.vertcat(*marg)])
    y_col, n_fail = _radau_start(element, y_el, km.x0 / x_nom, settings, np.broadcast_to(np.asarray(feed, dtype=float), (N,)))
    return element, x_nom, y_col, n_fail


def _radau_start_check(km: KineticControlModel, settings: FeedSettings, feed) -> tuple[np.ndarray, int]:
    """State at the batch end of the Radau integration under ``feed`` (model units) and the
    number of elements whose equations were not solved (for tests of the discretisation)."""
    _, x_nom, y_col, n_fail = _discretise(km, settings, feed)
    return y_col[-1][-1] * x_nom, n_fail


def optimize_feed_collocation(
    km: KineticControlModel, settings: FeedSettings, *, strain: str = "reference", mode: str | None = None, initial_feed=None
) -> FeedOptimum:
    """Maximise the mean or worst-case final product amount over the members by direct collocation.

    Parameters
    ----------
    km : KineticControlModel
        One strain in one or several ensemble members (one NLP, one shared feed).
    settings : FeedSettings
        Batch time, intervals, ``elements_per_interval``, ``collocation_deg``, bounds, limits,
        IPOPT options, CVODES tolerances of the initial and the verifying simulation.
    strain : str
        Label stored in the result.
    mode : {"mean", "worst"}, optional
        Default ``settings.robust``.
    initial_feed : float or array_like, optional
        Initial feed (L/h); default the constant feed that fills the reactor to ``volume_max``;
        scaled down (bisection) until it keeps the glucose limit, then simulated to initialise
        every collocation point.

    Returns
    -------
    FeedOptimum
        ``method = "collocation"``; ``objective`` and ``member_product_mmol`` from the CVODES
        re-simulation; ``nlp_objective`` the collocation value; ``simulation_mismatch`` the
        largest relative gap over the members between collocation and simulation (-).
    """
    mode = robust_mode(settings, mode, "optimize_feed_collocation")
    t_start = time.perf_counter()
    N, M, d = settings.n_intervals, settings.elements_per_interval, settings.collocation_deg
    n_el = N * M
    m = km.model
    nx = m.n_x
    iv = km.volume_index
    gi, pi = list(km.glucose_index), list(km.product_index)
    fs = settings.feed_max
    gmax, vmax = settings.glucose_max, settings.volume_max
    _, tc = collocation_times(settings)
    f0, init_obj, p_init = feasible_start(km, settings, initial_feed, mode)
    element, x_nom, y_col, n_fail = _discretise(km, settings, f0)

    # decision variables: feed per interval (scaled by feed_max) and the scaled states at every
    # collocation point; an element starts where the previous one ends (Radau: last point = end)
    Fw = ca.MX.sym("F_scaled", N)
    Yc = ca.MX.sym("Yc", nx, d * n_el)
    y_init = ca.DM(km.x0 / x_nom)
    starts = ca.horzcat(y_init, *[Yc[:, k * d + d - 1] for k in range(n_el - 1)])
    f_el = ca.horzcat(*[Fw[k // M] * fs for k in range(n_el)])
    R, G = element.map(n_el)(starts, Yc, f_el)
    yT = Yc[:, -1]
    nP = ca.vertcat(*[yT[i] * x_nom[i] for i in pi])
    j_scale = max(abs(init_obj), 1e-6)
    g = [ca.vec(R), ca.vec(G), yT[iv] * x_nom[iv] / vmax]
    lbg = [0.0] * R.numel() + [-np.inf] * G.numel() + [-np.inf]
    ubg = [0.0] * R.numel() + [0.0] * G.numel() + [1.0]
    w = [Fw, ca.vec(Yc)]
    lbw = [settings.feed_min / fs] * N + [0.0] * (nx * n_el * d)
    ubw = [1.0] * N + [np.inf] * (nx * n_el * d)
    # column-major vec: element by element, point by point
    w0 = list(f0 / fs) + list(np.maximum(y_col, 0.0).reshape(-1))
    if mode == "mean":
        obj = -ca.sum1(nP) / nP.numel() / j_scale
    else:
        t = ca.MX.sym("t")
        w.append(t)
        lbw.append(-np.inf)
        ubw.append(np.inf)
        w0.append(init_obj / j_scale)
        g.append(t - nP / j_scale)
        lbg += [-np.inf] * len(pi)
        ubg += [0.0] * len(pi)
        obj = -t
    opts = {
        **ipopt_options(settings.max_iter, settings.tol),
        "ipopt.mu_strategy": "monotone",
        "ipopt.bound_push": 1e-8,
        "ipopt.bound_frac": 1e-8,
        "ipopt.bound_relax_factor": 0.0,
        "ipopt.honor_original_bounds": "yes",
        "ipopt.acceptable_tol": max(settings.tol * 100, 1e-4),
        "ipopt.acceptable_iter": 5,
        "expand": True,
    }
    solver = ca.nlpsol("codesign_feed_collocation", "ipopt", {"x": ca.vertcat(*w), "f": obj, "g": ca.vertcat(*g)}, opts)
    sol = solver(x0=w0, lbx=lbw, ubx=ubw, lbg=lbg, ubg=ubg)
    check_interrupt()  # IPOPT turns Ctrl-C/SIGTERM into a status
    st = solver.stats()
    status = str(st.get("return_status"))
    if n_fail:
        status += f" [start: {n_fail} of {n_el} elements not solved, CVODES values used]"
    wopt = np.asarray(sol["x"]).reshape(-1)
    feed = np.clip(wopt[:N] * fs, settings.feed_min, settings.feed_max)
    nlp_products = np.asarray(ca.Function("nP", [ca.vertcat(*w)], [nP])(wopt)).reshape(-1)
    nlp_obj = member_objective(nlp_products, mode)
    # verify by CVODES: objective, discretisation gap and glucose limit at the collocation points
    try:
        p_opt = simulate_product_amounts(km, settings, feed)
        xs = simulate_states(km, settings, feed, tc.reshape(-1))
        glc_ratio = float(np.max(xs[:, gi] / xs[:, [iv]])) / gmax
    except RuntimeError:
        check_interrupt()
        p_opt, glc_ratio = np.full(len(pi), np.nan), np.inf
    mismatch = float(np.max(np.abs(nlp_products - p_opt) / np.maximum(np.abs(p_opt), 1e-9))) if np.all(np.isfinite(p_opt)) else np.inf
    feasible = glc_ratio <= 1.0 + settings.collocation_glucose_tolerance and bool(np.all(np.isfinite(p_opt)))
    if not feasible or member_objective(p_opt, mode) < init_obj:
        why = "infeasible in simulation" if not feasible else "worse than the start in simulation"
        feed, p_opt, status = f0, p_init, f"{status} ({why}: initial guess kept)"
    return FeedOptimum.solved(km, settings, "collocation", strain, mode, st, t_start, feed, p_opt, init_obj, status, nlp_obj, mismatch)
