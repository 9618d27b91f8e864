"""Robust feed optimisation by direct single shooting.

Each candidate feed is simulated with CVODES on the
:class:`~mpc_bio.codesign.model.KineticControlModel`, chained over the feed intervals
(:func:`~mpc_bio.codesign.simulation.shooting_nodes`; derivatives by forward finite differences
of the simulation, because CVODES forward sensitivities fail when glucose runs out), and IPOPT
(limited-memory Hessian) maximises the final product amount n_P(T) (mmol):

- ``"mean"``: the mean of n_P(T) over the stacked ensemble members;
- ``"worst"``: the smallest n_P(T) over the members (epigraph variable t <= n_P,m(T)).

Constraints (hard, every member at ``constraint_points`` equally spaced check times per feed
interval, the interval end included): glucose concentration n_glc,m / V <= ``glucose_max`` (mM;
between check times it can exceed the limit slightly), volume V <= ``volume_max`` (L), feed
bounds (L/h). Because the objective is evaluated by the same CVODES integration that simulates
the plant, the optimum has no discretisation gap: re-simulating the returned profile with
:func:`mpc_bio.nomad.reactor.simulate_reactor` reproduces it to integrator tolerance.
"""

from __future__ import annotations

import time

import casadi as ca
import numpy as np
from mpc_bio.interrupts import check_interrupt
from mpc_bio.ipopt_options import ipopt_options
from mpc_bio.numeric_function import NumericFunction

from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.optimum import FeedOptimum, member_objective, robust_mode
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.codesign.simulation import feasible_start, shooting_nodes, simulate_states

__all__ = ["optimize_robust_feed"]


def _finite_difference_function(name: str, fn: ca.Function, step: float) -> NumericFunction:
    """A CVODES simulation ``fn`` of the scaled feed (in [0, 1]) whose Jacobian is taken by forward
    finite differences of the simulation (step ``step``, backwards where it would leave [0, 1]).

    CVODES forward sensitivities of the stiff kinetic models fail (error-test failures) on some
    feeds, which stops IPOPT; differences of the simulation itself are robust and, with N feed
    intervals, cost N extra simulations per Jacobian.
    """

    def value(w: np.ndarray) -> np.ndarray:
        return np.asarray(fn(w), dtype=float).reshape(-1)

    def jacobian(w: np.ndarray, y0: np.ndarray) -> np.ndarray:
        jac = np.zeros((y0.size, w.size))
        for j in range(w.size):
            d = step if w[j] + step <= 1.0 else -step
            wj = w.copy()
            wj[j] += d
            jac[:, j] = (value(wj) - y0) / d
        return jac

    return NumericFunction(name, fn.size1_in(0), fn.size1_out(0), value, jacobian, buffered=False)


def optimize_robust_feed(
    km: KineticControlModel, settings: FeedSettings, *, strain: str = "reference", mode: str | None = None, initial_feed=None
) -> FeedOptimum:
    """Maximise the mean or worst-case final product amount over the stacked members.

    Parameters
    ----------
    km : KineticControlModel
        One strain in one or several ensemble members.
    settings : FeedSettings
        Batch time, feed intervals and bounds, limits, IPOPT options.
    strain : str
        Label stored in the result.
    mode : {"mean", "worst"}, optional
        Default ``settings.robust``.
    initial_feed : float or array_like, optional
        Initial guess (L/h); default the constant feed that fills the reactor to
        ``volume_max`` over the batch. A guess that breaks the glucose limit is scaled down
        (bisection) until it keeps it.

    Returns
    -------
    FeedOptimum
    """
    mode = robust_mode(settings, mode, "optimize_robust_feed")
    N = settings.n_intervals
    T = settings.batch_time
    h = T / N
    v0 = float(km.x0[km.volume_index])
    fs = settings.feed_max
    t0 = time.perf_counter()
    # start from a feasible guess (the initial feed scaled down until it keeps the glucose limit)
    f0, init_obj, p_init = feasible_start(km, settings, initial_feed, mode)
    w_sim = ca.MX.sym("F_scaled", N)
    nodes = shooting_nodes(km, settings, w_sim * fs)
    gmax, vmax = settings.glucose_max, settings.volume_max
    glc = [(x[i] - gmax * x[km.volume_index]) / (gmax * vmax) for x in nodes for i in km.glucose_index]
    n_glc = len(glc)
    # derivatives by forward finite differences of the CVODES simulation (step fd_step in the
    # scaled feed): CVODES forward sensitivities fail when glucose runs out (stiff collapse)
    plain = ca.Function("kinetic_batch", [w_sim], [ca.vertcat(*glc, *[nodes[-1][i] for i in km.product_index])])
    sim = _finite_difference_function("kinetic_batch_fd", plain, settings.fd_step)
    w_f = ca.MX.sym("F_scaled", N)
    out = sim(w_f)
    products = out[n_glc:]
    prod_fn = ca.Function("products", [w_f], [products])
    glc_fn = ca.Function("glucose_margin", [w_f], [out[:n_glc]])

    def glucose_ok(f_scaled) -> bool:
        try:
            return float(np.max(np.asarray(glc_fn(f_scaled)))) <= 0.0
        except RuntimeError:
            check_interrupt()
            return False

    j_scale = max(abs(init_obj), 1e-6)
    g = [out[k] for k in range(n_glc)]
    lbg = [-np.inf] * n_glc
    ubg = [0.0] * n_glc
    # volume is linear in the feed: V(T) = V0 + h sum F  (checked at the end, the largest)
    g.append((v0 + h * ca.sum1(w_f * fs)) / vmax)
    lbg.append(-np.inf)
    ubg.append(1.0)
    lbx = [settings.feed_min / fs] * N
    ubx = [1.0] * N
    x0 = list(f0 / fs)
    # epigraph form for both modes (t <= mean or t <= every member): the objective gradient is
    # trivial, so each IPOPT iteration needs one sensitivity integration (the constraint Jacobian)
    t = ca.MX.sym("t")
    w = ca.vertcat(w_f, t)
    obj = -t
    rows = [ca.sum1(products) / products.numel()] if mode == "mean" else [products[k] for k in range(products.numel())]
    for r in rows:
        g.append(t - r / j_scale)
        lbg.append(-np.inf)
        ubg.append(0.0)
    lbx.append(-np.inf)
    ubx.append(np.inf)
    x0.append(init_obj / j_scale)
    opts = ipopt_options(
        settings.max_iter, settings.tol, **{"ipopt.hessian_approximation": "limited-memory", "calc_lam_p": False, "calc_lam_x": False}
    )
    g_all = ca.vertcat(*g)
    solver = ca.nlpsol("codesign_feed", "ipopt", {"x": w, "f": obj, "g": g_all}, opts)
    sol = solver(x0=x0, lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
    check_interrupt()  # IPOPT turns Ctrl-C/SIGTERM into a status
    st = solver.stats()
    feed = np.clip(np.asarray(sol["x"]).reshape(-1)[:N] * fs, settings.feed_min, settings.feed_max)
    status = str(st.get("return_status"))
    try:
        p_opt = np.asarray(prod_fn(feed / fs)).reshape(-1)
        path = ca.Function("path", [w_f], [ca.vertcat(*g[: n_glc + 1])])
        viol = float(np.max(np.asarray(path(feed / fs)).reshape(-1) - np.asarray(ubg[: n_glc + 1])))
    except RuntimeError:
        check_interrupt()
        p_opt, viol = np.full(len(km.product_index), np.nan), np.inf
    # IPOPT can stop early (iteration limit, or CVODES failing inside a trial step): keep the last
    # iterate only if it is feasible and no worse than the (feasible) initial guess
    feasible = viol <= 1e-6 and bool(np.all(np.isfinite(p_opt)))
    nlp_obj = member_objective(p_opt, mode)
    if not feasible or member_objective(p_opt, mode) < init_obj:
        if glucose_ok(f0 / fs):
            feed, p_opt, status = f0, p_init, f"{status} (initial guess kept)"
        elif not feasible:
            status = f"{status} (infeasible)"
    # independent re-simulation (other CVODES segmentation) of the returned feed
    try:
        p_check = simulate_states(km, settings, feed, [T])[-1][list(km.product_index)]
        mismatch = float(np.max(np.abs(p_check - p_opt) / np.maximum(np.abs(p_check), 1e-9)))
    except RuntimeError:
        check_interrupt()
        mismatch = float("inf")
    return FeedOptimum.solved(km, settings, "shooting", strain, mode, st, t0, feed, p_opt, init_obj, status, nlp_obj, mismatch)
