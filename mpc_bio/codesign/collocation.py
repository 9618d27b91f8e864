"""Robust feed optimisation on the kinetic fed-batch by direct collocation (Radau, IPOPT).

The feed is piecewise constant on ``n_intervals`` equal intervals; each interval is cut into
``elements_per_interval`` finite elements with ``collocation_deg`` Radau points each (Radau IIA
collocation is L-stable and stiffly accurate, which the kinetic models need: intracellular time
constants of seconds to minutes in a batch of hours). What makes the NLP solvable:

- **state transformation**: the intracellular states z = x / x_ref (-), the substrate amounts
  n_glc (mmol) and the biomass amounts n_X (gDW) are collocated in logarithms,
  y = ln x, so they stay positive at every IPOPT iterate (the rate laws divide by substrate
  concentrations: a negative trial point would be meaningless) and the tiny glucose levels after
  exhaustion are as well resolved as the large ones; the product amounts n_P (mmol) and the volume
  V (L) are scaled by their largest value in the initial simulation (y = x / x_nom);
- **initial guess from a simulation**: every collocation point starts at the CVODES solution
  under the initial (shared) feed, so IPOPT starts on the dynamics, not from a flat guess;
- **worst case by an epigraph variable**: max t subject to t <= n_P,m(T) for every member m
  (``"worst"``); ``"mean"`` maximises the mean of n_P,m(T) directly;
- **IPOPT options**: exact Hessian, ``mu_strategy = adaptive``, small ``bound_push`` /
  ``bound_frac`` (the feed optimum sits on its bounds), ``max_iter`` from the settings.

Constraints (hard): the glucose concentration n_glc,m / V <= ``glucose_max`` (mM) at every
collocation point of every member (ln n_glc,m - ln V <= ln glucose_max), V(T) <= ``volume_max``
(L), feed bounds (L/h). The optimum is then re-simulated with CVODES
(:func:`~mpc_bio.codesign.feed.simulate_product_amounts`): the reported objective is the
simulated one, and the relative gap between the collocation objective and the simulation is
returned as ``FeedOptimum.simulation_mismatch`` (the discretisation error). If the re-simulated
optimum breaks the glucose limit by more than ``collocation_glucose_tolerance`` or is worse than
the (feasible) start, the start is kept and the status says so.

Status (measured 2026-11-28 on the co-design tests' tiny ensemble, one member; shooting stays
the default of ``FeedSettings.method``):

- the start is sound where the dynamics are smooth: on a 1 h batch (2 intervals x 4 elements,
  Radau 3) every element's equations are solved and n_P, n_X at the batch end are within 1 %
  of CVODES (test ``test_radau_start_solves_the_collocation_equations_and_tracks_cvodes``);
- IPOPT does not converge even there: from that feasible start (primal infeasibility 5e-7) the
  exact-Hessian iterations need regularisation 1e10-1e18 (the Lagrangian Hessian of the
  exp-transformed stiff kinetics is strongly indefinite) and stop at ``max_iter``
  (30: 0.01467 mmol, 100: 0.01463 mmol, 8 elements per interval and 60: 0.01541 mmol) while
  shooting reaches 0.01582 mmol; a limited-memory Hessian takes steps of 1e-3 and gains 0.07 %
  in 60 iterations;
- on the 8 h batch with the optimal feed (3 intervals), glucose exhaustion at about 6.3 h moves
  intracellular concentrations over 6-10 decades (1e-7 to 1e3 of the reference) within
  minutes: the element containing it has no Radau solution near the trajectory (IPOPT on the
  element's square system: "Infeasible_Problem_Detected", also with 16 elements per interval),
  so the NLP starts with primal infeasibility 45, enters restoration at once and does not
  return in 50 iterations. With 4 elements per interval the collocation value of the same
  feed differs from CVODES by 10-58 %.

The re-simulation guard means a run with ``method = "collocation"`` never reports a collocation
artefact: it returns the (CVODES-verified) start feed, or a verified improvement.
"""

from __future__ import annotations

import math
import time

import casadi as ca
import numpy as np

from mpc_bio.codesign.feed import (
    FeedOptimum,
    _aggregate,
    feasible_start,
    simulate_product_amounts,
    simulate_states,
)
from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.settings import FeedSettings

__all__ = ["collocation_times", "optimize_feed_collocation"]


def collocation_times(settings: FeedSettings) -> tuple[np.ndarray, np.ndarray]:
    """Element start times (n_el,) and collocation times (n_el, deg) of the batch (h)."""
    n_el = settings.n_intervals * settings.elements_per_interval
    h = settings.batch_time_h / n_el
    tau = np.asarray(ca.collocation_points(settings.collocation_deg, "radau"))
    starts = np.arange(n_el) * h
    return starts, starts[:, None] + h * tau[None, :]


def _log_mask(km: KineticControlModel) -> np.ndarray:
    """True for the states collocated in logarithms (intracellular z, n_glc, n_X of every member)."""
    mask = np.zeros(km.model.n_x, dtype=bool)
    mask[: km.volume_index] = True
    mask[list(km.product_index)] = False
    return mask


def _radau_start(element: ca.Function, to_y, x_el: np.ndarray, km: KineticControlModel, settings: FeedSettings, feed: np.ndarray):
    """A start that satisfies the collocation equations: the NLP's own Radau scheme integrated
    element by element under ``feed`` (Newton on the d n_x equations of each element, the CVODES
    values at the collocation points as first iterate, else the start state held constant; if
    both fail, IPOPT's filter line search on the same square system). An element none of them
    solves keeps the CVODES values (and the next starts from CVODES again); their number is
    returned."""
    n_el, d1, nx = x_el.shape
    d, M = d1 - 1, settings.elements_per_interval
    yc = ca.SX.sym("yc", nx * d)
    par = ca.SX.sym("par", nx + 1)
    res = element(par[:nx], ca.reshape(yc, nx, d), par[nx])[0]
    rf = ca.rootfinder("radau_step", "newton", ca.Function("radau_residual", [yc, par], [res]),
                       {"abstol": 1e-9, "max_iter": 60, "error_on_fail": True})
    # fallback with globalisation: IPOPT (filter line search) on the same square system
    fb = ca.nlpsol("radau_step_ipopt", "ipopt", {"x": yc, "p": par, "f": 0, "g": res},
                   {"ipopt.print_level": 0, "ipopt.sb": "yes", "print_time": 0, "ipopt.max_iter": 200, "ipopt.tol": 1e-10})
    y_start = to_y(x_el[:, 0, :])
    y_col = to_y(x_el[:, 1:, :])
    yk = to_y(km.x0)
    n_fail = 0
    for k in range(n_el):
        sol = None
        # first iterate: the CVODES values, else the element's start state held constant
        for guess in (y_col[k], np.tile(yk, (d, 1))):
            try:
                sol = np.asarray(rf(guess.reshape(-1), np.concatenate([yk, [feed[k // M]]]))).reshape(d, nx)
            except RuntimeError:
                continue
            if np.all(np.isfinite(sol)):
                break
            sol = None
        if sol is None:
            r = fb(x0=y_col[k].reshape(-1), p=np.concatenate([yk, [feed[k // M]]]), lbg=0, ubg=0)
            if fb.stats()["success"]:
                sol = np.asarray(r["x"]).reshape(d, nx)
        if sol is not None:
            y_start[k], y_col[k] = yk, sol
            yk = sol[-1]
        else:
            n_fail += 1
            yk = y_start[k + 1] if k + 1 < n_el else y_col[k][-1]
    return y_start, y_col, n_fail


def _discretise(km: KineticControlModel, settings: FeedSettings, feed: np.ndarray):
    """The Radau element function, the state transformation and the Radau start under ``feed``.

    Returns ``(element, to_y, x_nom, y_start, y_col, n_fail)``: ``element(y0, yc, F)`` gives the
    collocation residuals (n_x d) and the log glucose margins (n_members d) of one element;
    ``to_y`` maps states to NLP variables; ``y_start`` (n_el, n_x) and ``y_col`` (n_el, d, n_x)
    the start; ``n_fail`` the elements whose Newton failed (CVODES values kept there).
    """
    N, M, d = settings.n_intervals, settings.elements_per_interval, settings.collocation_deg
    T = settings.batch_time_h
    n_el = N * M
    h = T / n_el
    m = km.model
    nx = m.n_x
    iv, gi = km.volume_index, list(km.glucose_index)
    starts, tc = collocation_times(settings)
    # CVODES solution under the start feed at every element start and collocation point
    grid = np.concatenate([np.column_stack([starts, tc]).reshape(-1), [T]])
    sim = simulate_states(km, settings, feed, grid)  # (n_grid, nx)
    x_el = sim[:-1].reshape(n_el, d + 1, nx)
    logm = _log_mask(km)
    lin = ~logm
    floor = 1e-12
    x_nom = np.ones(nx)
    x_nom[lin] = np.maximum(np.max(np.abs(sim[:, lin]), axis=0), 1e-3)

    def to_y(x):
        x = np.asarray(x, dtype=float)
        y = x / x_nom
        y[..., logm] = np.log(np.maximum(x[..., logm], floor))
        return y

    # one element as an SX function: Radau residuals and the log-glucose margin at its points
    ys = ca.SX.sym("y0", nx)
    yc = ca.SX.sym("yc", nx, d)
    u = ca.SX.sym("F")
    p = ca.DM(m.param_values)
    C, _, _ = ca.collocation_coeff(ca.collocation_points(d, "radau"))
    Z = ca.horzcat(ys, yc)
    res, marg = [], []
    for j in range(d):
        yj = yc[:, j]
        xj = ca.vertcat(*[ca.exp(yj[i]) if logm[i] else yj[i] * x_nom[i] for i in range(nx)])
        f = m.rhs(xj, u, p)
        dy = ca.vertcat(*[f[i] / xj[i] if logm[i] else f[i] / x_nom[i] for i in range(nx)])
        res.append(h * dy - Z @ C[:, j])
        marg.append(ca.vertcat(*[yj[i] for i in gi]) - ca.log(yj[iv] * x_nom[iv]) - math.log(settings.glucose_max_mmol_per_l))
    element = ca.Function("kinetic_radau_element", [ys, yc, u], [ca.vertcat(*res), ca.vertcat(*marg)])
    y_start, y_col, n_fail = _radau_start(element, to_y, x_el, km, settings, np.broadcast_to(np.asarray(feed, dtype=float), (N,)))
    return element, to_y, x_nom, y_start, y_col, n_fail


def _from_y(y: np.ndarray, km: KineticControlModel, x_nom: np.ndarray) -> np.ndarray:
    x = np.asarray(y, dtype=float) * x_nom
    logm = _log_mask(km)
    x[..., logm] = np.exp(np.asarray(y)[..., logm])
    return x


def _radau_start_check(km: KineticControlModel, settings: FeedSettings, feed) -> tuple[np.ndarray, int]:
    """State at the batch end of the Radau integration under ``feed`` (model units) and the
    number of elements whose Newton failed (for tests of the discretisation)."""
    _, _, x_nom, _, y_col, n_fail = _discretise(km, settings, feed)
    return _from_y(y_col[-1][-1], km, x_nom), n_fail


def optimize_feed_collocation(
    km: KineticControlModel,
    settings: FeedSettings,
    *,
    strain: str = "reference",
    mode: str | None = None,
    initial_feed=None,
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
    mode = settings.robust if mode is None else mode
    if mode not in ("mean", "worst"):
        raise ValueError(f"The 'mode' parameter of optimize_feed_collocation must be 'mean' or 'worst'. Got {mode!r} instead.")
    t_start = time.perf_counter()
    N, M, d = settings.n_intervals, settings.elements_per_interval, settings.collocation_deg
    T = settings.batch_time_h
    n_el = N * M
    m = km.model
    nx = m.n_x
    iv = km.volume_index
    gi, pi = list(km.glucose_index), list(km.product_index)
    fs = settings.feed_max_l_per_h
    gmax, vmax = settings.glucose_max_mmol_per_l, settings.volume_max_l
    _, tc = collocation_times(settings)
    f0, init_obj, p_init = feasible_start(km, settings, initial_feed, mode)
    element, to_y, x_nom, y_start, y_col, n_fail = _discretise(km, settings, f0)

    # decision variables: feed per interval (scaled by feed_max), element start states, collocation states
    Fw = ca.MX.sym("F_scaled", N)
    Y0 = ca.MX.sym("Y0", nx, n_el)
    Yc = ca.MX.sym("Yc", nx, d * n_el)
    f_el = ca.horzcat(*[Fw[k // M] * fs for k in range(n_el)])
    fmap = element.map(n_el)
    R, G = fmap(Y0, Yc, f_el)
    Yc3 = [Yc[:, k * d:(k + 1) * d] for k in range(n_el)]
    cont = [Y0[:, k + 1] - Yc3[k][:, d - 1] for k in range(n_el - 1)]
    y_init = ca.DM(to_y(km.x0))
    yT = Yc3[-1][:, d - 1]
    nP = ca.vertcat(*[yT[i] * x_nom[i] for i in pi])
    j_scale = max(abs(init_obj), 1e-6)
    g = [ca.vec(R), ca.vec(Y0[:, 0] - y_init), *cont, ca.vec(G), yT[iv] * x_nom[iv] / vmax]
    n_eq = R.numel() + nx + nx * (n_el - 1)
    lbg = [0.0] * n_eq + [-np.inf] * G.numel() + [-np.inf]
    ubg = [0.0] * n_eq + [0.0] * G.numel() + [1.0]
    w = [Fw, ca.vec(Y0), ca.vec(Yc)]
    lbw = [settings.feed_min_l_per_h / fs] * N + [-np.inf] * (nx * n_el * (d + 1))
    ubw = [1.0] * N + [np.inf] * (nx * n_el * (d + 1))
    # column-major vec: element by element, point by point
    w0 = list(f0 / fs) + list(y_start.reshape(-1)) + list(y_col.reshape(-1))
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
        "ipopt.max_iter": settings.max_iter, "ipopt.tol": settings.tol, "ipopt.print_level": 0, "ipopt.sb": "yes",
        "print_time": 0, "ipopt.mu_strategy": "adaptive", "ipopt.bound_push": 1e-8, "ipopt.bound_frac": 1e-8,
        "ipopt.acceptable_tol": max(settings.tol * 100, 1e-4), "ipopt.acceptable_iter": 5, "expand": True,
    }
    solver = ca.nlpsol("codesign_feed_collocation", "ipopt", {"x": ca.vertcat(*w), "f": obj, "g": ca.vertcat(*g)}, opts)
    sol = solver(x0=w0, lbx=lbw, ubx=ubw, lbg=lbg, ubg=ubg)
    st = solver.stats()
    status = str(st.get("return_status"))
    if n_fail:
        status += f" [start: {n_fail} of {n_el} elements not solved by Newton, CVODES values used]"
    wopt = np.asarray(sol["x"]).reshape(-1)
    feed = np.clip(wopt[:N] * fs, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    nlp_products = np.asarray(ca.Function("nP", [ca.vertcat(*w)], [nP])(wopt)).reshape(-1)
    nlp_obj = _aggregate(nlp_products, mode)
    # verify by CVODES: objective, discretisation gap and glucose limit at the collocation points
    try:
        p_opt = simulate_product_amounts(km, settings, feed)
        xs = simulate_states(km, settings, feed, tc.reshape(-1))
        glc_ratio = float(np.max(xs[:, gi] / xs[:, [iv]])) / gmax
    except RuntimeError:
        p_opt, glc_ratio = np.full(len(pi), np.nan), np.inf
    mismatch = float(np.max(np.abs(nlp_products - p_opt) / np.maximum(np.abs(p_opt), 1e-9))) if np.all(np.isfinite(p_opt)) else np.inf
    feasible = glc_ratio <= 1.0 + settings.collocation_glucose_tolerance and bool(np.all(np.isfinite(p_opt)))
    if not feasible or _aggregate(p_opt, mode) < init_obj:
        why = "infeasible in simulation" if not feasible else "worse than the start in simulation"
        feed, p_opt, status = f0, p_init, f"{status} ({why}: initial guess kept)"
    return FeedOptimum(
        strain=strain, mode=mode, method="collocation", edges=np.linspace(0.0, T, N + 1), feed=feed,
        objective=_aggregate(p_opt, mode), member_product_mmol=p_opt, initial_objective=init_obj,
        members=km.members, status=status, success=bool(st.get("success")),
        iterations=int(st.get("iter_count", -1)), solve_time_s=time.perf_counter() - t_start,
        feed_glucose_mmol_per_l=km.feed_glucose_mmol_per_l, nlp_objective=nlp_obj, simulation_mismatch=mismatch,
    )
