"""Offline feed-profile optimisation over the whole batch by direct collocation (CasADi + IPOPT).

The feed is piecewise constant on ``n_intervals`` equal intervals; the states are collocated with
Radau polynomials of degree ``collocation_deg`` on each interval. The volume, glucose and acetate
limits are hard path constraints at every collocation point, written linearly in the amounts
(``n_glc - (1 - b) c_max V <= 0``, with a backoff b that starts at 0). The optimum is re-simulated
with CVODES under the same piecewise-constant feed on a fine grid (``OfflineSettings.check_dt``)
and checked there: between collocation points the true trajectory can cross a limit the
collocation points respect. While the largest relative violation exceeds
``OfflineSettings.max_violation``, each violated limit is backed off by the violation found (plus
a quarter of the tolerance) and the problem solved again from the previous solution (the backoffs
are parameters of one NLP, built once). The objective and the violation reported are those of
the re-simulated profile. The KKT residuals of the IPOPT
solution are recomputed from the returned multipliers (stationarity, primal feasibility,
complementarity), independently of IPOPT's own termination test.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.collocation import radau_residuals
from mpc_bio.control.model import ControlModel, Trajectory, constraint_margins, objective_value, simulate_feed
from mpc_bio.control.settings import BatchProblem, ControlError, OfflineSettings
from mpc_bio.interrupts import check_interrupt
from mpc_bio.ipopt_options import ipopt_options
from mpc_bio.status import note

__all__ = ["OfflineResult", "optimize_feed_profile", "piecewise_feed"]


@dataclass(frozen=True, eq=False)
class OfflineResult:
    """An optimised feed profile.

    Attributes
    ----------
    interval_edges : ndarray, shape (n+1,)
        Times of the feed intervals [h].
    feed : ndarray, shape (n,)
        Feed rate on each interval [L/h].
    node_states : ndarray, shape (n+1, n_x)
        Collocation states at the interval edges.
    objective : float
        Objective at the end of the batch from the collocation solution.
    simulated : Trajectory
        The profile re-simulated with CVODES (fine grid).
    status : str
        IPOPT return status.
    success : bool
    iterations : int
    solve_time : float
        IPOPT wall time [s].
    kkt : dict
        ``stationarity`` (inf-norm of the Lagrangian gradient), ``primal_infeasibility``,
        ``complementarity`` (max |lambda * slack|), all in the scaled NLP's units.
    max_violation_frac : float
        Largest relative violation of the volume, glucose and acetate limits on the fine check
        grid (``simulated``) [-]; 0 when every limit holds.
    backoff : dict
        Backoff of each limit in the final solve (fraction of the limit) [-].
    rounds : int
        Number of NLP solves (1 + backoff re-solves).
    """

    interval_edges: np.ndarray
    feed: np.ndarray
    node_states: np.ndarray
    objective: float
    simulated: Trajectory
    status: str
    success: bool
    iterations: int
    solve_time: float
    kkt: dict
    max_violation_frac: float = 0.0
    backoff: dict = None
    rounds: int = 1


def piecewise_feed(edges: np.ndarray, feed: np.ndarray):
    """A feed law ``f(t, x)`` for :func:`simulate_feed` from a piecewise-constant profile."""
    edges = np.asarray(edges, dtype=float)
    feed = np.asarray(feed, dtype=float)

    def law(t, x):
        k = int(np.searchsorted(edges, t + 1e-9, side="right") - 1)
        return float(feed[min(max(k, 0), feed.size - 1)])

    return law


def _x_scale(model: ControlModel, problem: BatchProblem, x0, guess: Trajectory) -> np.ndarray:
    scale = np.maximum(np.abs(guess.states).max(axis=0), 1e-3)
    scale[model.index("volume")] = problem.volume_max
    return scale


def optimize_feed_profile(
    model: ControlModel,
    problem: BatchProblem,
    x0,
    settings: OfflineSettings | None = None,
    *,
    params=None,
    initial_feed=None,
    sim_dt: float | None = None,
    check_model: ControlModel | None = None,
) -> OfflineResult:
    """Optimise a piecewise-constant feed profile over the whole batch.

    Parameters
    ----------
    model : ControlModel
    problem : BatchProblem
        Objective, bounds and limits (all hard here).
    x0 : array_like
        Initial state (model units).
    settings : OfflineSettings, optional
    params : array_like, optional
        Model parameters (nominal by default).
    initial_feed : float or array_like, optional
        Initial guess of the feed [L/h]; by default the constant feed that would fill the
        reactor to ``volume_max`` over the batch.
    sim_dt : float, optional
        Step of the CVODES re-simulation and fine check [h]; default ``settings.check_dt``.
    check_model : ControlModel, optional
        Model on which the profile is re-simulated, checked and backed off (same states and
        parameters as ``model``); by default ``model`` itself. With a cheap distilled ``model``
        and the full surrogate here, the optimisation is fast and the reported objective and
        limits are those of the full model.

    Returns
    -------
    OfflineResult
    """
    settings = settings or OfflineSettings()
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    if x0.size != model.n_x:
        raise ControlError(f"x0 has {x0.size} entries, the model has {model.n_x} states.")
    check = model if check_model is None else check_model
    if check.state_names != model.state_names or check.n_p != model.n_p:
        raise ControlError(
            f"check_model must have the states {list(model.state_names)} and {model.n_p} parameters of the model. "
            f"Got states {list(check.state_names)} and {check.n_p} parameters instead."
        )
    params = model.param_values if params is None else np.asarray(params, dtype=float).reshape(-1)
    N, d = settings.n_intervals, settings.collocation_deg
    h = problem.batch_time / N
    edges = np.linspace(0.0, problem.batch_time, N + 1)
    iv, ig, ia = model.index("volume"), model.index("glucose"), model.index("acetate")
    if initial_feed is None:
        initial_feed = np.clip((problem.volume_max - x0[iv]) / problem.batch_time, problem.feed_min, problem.feed_max)
    f_guess = np.broadcast_to(np.asarray(initial_feed, dtype=float), (N,)).copy()
    guess = simulate_feed(model, problem, x0, piecewise_feed(edges, f_guess), dt=h)
    xs = _x_scale(model, problem, x0, guess)
    fs = max(problem.feed_max, 1e-6)
    xsd = ca.DM(xs)

    w, lbw, ubw, w0 = [], [], [], []
    g, lbg, ubg = [], [], []
    lo_state = np.zeros(model.n_x)
    lo_state[iv] = 1e-6
    p_dm = ca.DM(params)
    limits = ["volume", "glucose"] + (["acetate"] if ia is not None else [])
    bo = ca.MX.sym("backoff", len(limits))  # fraction of each limit kept free

    def add_path(xk):
        # xk unscaled: V <= (1-b) Vmax, n_glc - (1-b) gmax V <= 0, n_ac - (1-b) amax V <= 0  (scaled)
        g.append(xk[iv] / problem.volume_max + bo[0])
        lbg.append(-np.inf)
        ubg.append(1.0)
        g.append((xk[ig] - (1 - bo[1]) * problem.glucose_max * xk[iv]) / (problem.glucose_max * problem.volume_max))
        lbg.append(-np.inf)
        ubg.append(0.0)
        if ia is not None:
            g.append((xk[ia] - (1 - bo[2]) * problem.acetate_max * xk[iv]) / (problem.acetate_max * problem.volume_max))
            lbg.append(-np.inf)
            ubg.append(0.0)

    Xk = ca.DM(x0)
    feeds = []
    obj = 0.0
    for k in range(N):
        Fk_s = ca.MX.sym(f"F_{k}")
        w.append(Fk_s)
        lbw.append(problem.feed_min / fs)
        ubw.append(problem.feed_max / fs)
        w0.append(f_guess[k] / fs)
        Fk = Fk_s * fs
        feeds.append(Fk)
        Xc = []
        for j in range(d):
            s = ca.MX.sym(f"X_{k}_{j}", model.n_x)
            w.append(s)
            lbw.extend(lo_state / xs)
            ubw.extend([np.inf] * model.n_x)
            w0.extend(guess.states[k + 1] / xs)
            Xc.append(s * xsd)
        residuals = radau_residuals(lambda x, j: model.rhs(x, Fk, p_dm), Xk, Xc, h)
        for j in range(d):
            g.append(residuals[j] / xsd)
            lbg.extend([0.0] * model.n_x)
            ubg.extend([0.0] * model.n_x)
            add_path(Xc[j])
        Xend = Xc[-1]  # the last Radau point is the element's end
        Xn_s = ca.MX.sym(f"X_{k + 1}", model.n_x)
        w.append(Xn_s)
        lbw.extend(lo_state / xs)
        ubw.extend([np.inf] * model.n_x)
        w0.extend(guess.states[k + 1] / xs)
        Xk = Xn_s * xsd
        g.append((Xend - Xk) / xsd)
        lbg.extend([0.0] * model.n_x)
        ubg.extend([0.0] * model.n_x)
    if problem.objective == "biomass":
        J = Xk[model.index("biomass")]
    elif problem.objective == "product":
        if model.index("product") is None:
            raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
        J = Xk[model.index("product")]
    else:
        J = Xk[model.index("biomass")] / Xk[iv] / problem.batch_time
    j_scale = max(abs(guess.objective), 1e-6)
    obj = -J / j_scale
    if settings.move_penalty > 0:
        for k in range(1, N):
            obj = obj + settings.move_penalty * (feeds[k] - feeds[k - 1]) ** 2 / j_scale

    nlp = {"x": ca.vertcat(*w), "f": obj, "g": ca.vertcat(*g), "p": bo}
    opts = ipopt_options(settings.max_iter, settings.tol)
    if model.symvar == "SX":
        opts["expand"] = True
    solver = ca.nlpsol("offline_feed", "ipopt", nlp, opts)
    dt_check = settings.check_dt if sim_dt is None else float(sim_dt)
    stride = 1 + d * model.n_x + model.n_x
    backoff = np.zeros(len(limits))
    start = {"x0": np.array(w0)}
    total_time, total_iter, rounds = 0.0, 0, 0
    best = None
    while True:
        rounds += 1
        note(f"offline optimum: IPOPT solve {rounds} ({nlp['x'].numel()} variables)")
        sol = solver(**start, p=backoff, lbx=lbw, ubx=ubw, lbg=lbg, ubg=ubg)
        check_interrupt()  # IPOPT turns Ctrl-C/SIGTERM into a status: stop here, not with a broken optimum
        st = solver.stats()
        total_time += float(st.get("t_wall_total", np.nan))
        total_iter += int(st.get("iter_count", 0))
        wopt = np.asarray(sol["x"]).reshape(-1)
        feed = np.array([wopt[k * stride] * fs for k in range(N)])
        note(f"offline optimum: CVODES check of the profile on a {dt_check:g} h grid")
        simulated = simulate_feed(check, problem, x0, piecewise_feed(edges, feed), dt=dt_check, params=params, stop_at_volume_max=False)
        margins = constraint_margins(check, problem, simulated.states)
        viol = np.array([max(0.0, -float(np.min(margins[c]))) for c in limits])
        cand = (sol, st, wopt, feed, simulated, float(viol.max()), backoff.copy())
        if bool(st.get("success")) or best is None:
            best = cand
        if not bool(st.get("success")) or viol.max() <= settings.max_violation or rounds > settings.backoff_rounds:
            break
        backoff = np.minimum(backoff + np.where(viol > 0.0, viol + 0.25 * settings.max_violation, 0.0), 0.5)
        start = {"x0": sol["x"], "lam_x0": sol["lam_x"], "lam_g0": sol["lam_g"]}
    sol, st, wopt, feed, simulated, vmax_frac, bo_used = best
    kkt = _kkt(nlp, sol, np.array(lbw), np.array(ubw), np.array(lbg), np.array(ubg), bo_used)
    nodes = [x0]
    for k in range(N):
        s0 = k * stride + 1 + d * model.n_x
        nodes.append(wopt[s0 : s0 + model.n_x] * xs)
    nodes = np.array(nodes)
    return OfflineResult(
        interval_edges=edges,
        feed=feed,
        node_states=nodes,
        objective=objective_value(model, problem, nodes[-1]),
        simulated=simulated,
        status=str(st.get("return_status")),
        success=bool(st.get("success")),
        iterations=total_iter,
        solve_time=total_time,
        kkt=kkt,
        max_violation_frac=vmax_frac,
        backoff=dict(zip(limits, bo_used.tolist())),
        rounds=rounds,
    )


def _kkt(nlp, sol, lbx, ubx, lbg, ubg, p) -> dict:
    """KKT residuals of an NLP solution recomputed from the multipliers (CasADi sign convention)."""
    x, f, g = nlp["x"], nlp["f"], nlp["g"]
    grad = ca.Function("kkt_grad", [x, nlp["p"]], [ca.gradient(f, x), ca.jacobian(g, x), g])
    xs = sol["x"]
    gf, jg, gv = grad(xs, p)
    lam_g = np.asarray(sol["lam_g"]).reshape(-1)
    lam_x = np.asarray(sol["lam_x"]).reshape(-1)
    stat = np.asarray(gf + jg.T @ sol["lam_g"] + sol["lam_x"]).reshape(-1)
    xv = np.asarray(xs).reshape(-1)
    gv = np.asarray(gv).reshape(-1)
    pinf = max(
        float(np.max(np.maximum(0, lbx - xv), initial=0)),
        float(np.max(np.maximum(0, xv - ubx), initial=0)),
        float(np.max(np.maximum(0, lbg - gv), initial=0)),
        float(np.max(np.maximum(0, gv - ubg), initial=0)),
    )

    # complementarity: lam > 0 pairs with the upper bound, lam < 0 with the lower bound
    def comp(lam, val, lo, hi):
        up = np.where(lam > 0, lam * np.where(np.isfinite(hi), hi - val, np.inf), 0.0)
        dn = np.where(lam < 0, -lam * np.where(np.isfinite(lo), val - lo, np.inf), 0.0)
        return float(np.max(np.abs(np.r_[up, dn]), initial=0.0))

    return {
        "stationarity": float(np.max(np.abs(stat))),
        "primal_infeasibility": pinf,
        "complementarity": max(comp(lam_x, xv, lbx, ubx), comp(lam_g, gv, lbg, ubg)),
    }
