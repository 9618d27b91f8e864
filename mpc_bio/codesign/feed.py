"""Feed profiles for the kinetic fed-batch: shared optimum and strain-specific robust optimum.

The feed is piecewise constant on ``n_intervals`` equal intervals of the batch. Each candidate
profile is simulated with CVODES on the :class:`~mpc_bio.codesign.model.KineticControlModel`,
chained over the intervals (direct single shooting; derivatives by forward finite differences of
the simulation, because CVODES forward sensitivities fail when glucose runs out), and IPOPT
(limited-memory Hessian) maximises the final product amount n_P(T) (mmol):

- ``"mean"``: the mean of n_P(T) over the stacked ensemble members;
- ``"worst"``: the smallest n_P(T) over the members (epigraph variable t <= n_P,m(T)).

Constraints (hard, every member at ``constraint_points`` equally spaced check times per feed
interval, the interval end included): glucose concentration n_glc,m / V <= ``glucose_max`` (mM;
between check times it can exceed the limit slightly), volume V <= ``volume_max`` (L), feed bounds (L/h). Because
the objective is evaluated by the same CVODES integration that simulates the plant, the optimum
has no discretisation gap: re-simulating the returned profile with
:func:`mpc_bio.nomad.verification.simulate_reactor` reproduces it to integrator tolerance.

The control layer's direct-collocation optimiser (:func:`mpc_bio.control.optimize_feed_profile`,
one Radau element per feed interval) is available for the shared feed with ``method =
"collocation"``; on the stiff kinetic models (intracellular time constants of minutes, batch of
hours) it needs many more elements than feed intervals to be accurate, so shooting is the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.control import BatchProblem, OfflineSettings, optimize_feed_profile
from mpc_bio.nomad.verification import FeedProfile

__all__ = ["FeedOptimum", "batch_problem", "optimize_robust_feed", "optimize_feed_collocation", "simulate_product_amounts"]


@dataclass(frozen=True, eq=False)
class FeedOptimum:
    """An optimised piecewise-constant feed.

    Attributes
    ----------
    strain : str
        Label of the strain it was optimised for.
    mode : str
        "mean" or "worst" (over ``members``).
    method : str
        "shooting" or "collocation".
    edges : ndarray (n+1,)
        Interval edges (h).
    feed : ndarray (n,)
        Feed rate per interval (L/h).
    objective : float
        Mean or worst-case final product amount over the members (mmol), from CVODES.
    member_product_mmol : ndarray (n_members,)
        Final product amount per member under this feed (mmol).
    initial_objective : float
        The same objective under the initial guess (mmol).
    members : tuple of int
        Ensemble indices of the members.
    status : str
        IPOPT return status.
    success : bool
    iterations : int
    solve_time_s : float
        Wall time of the optimisation (s).
    feed_glucose_mmol_per_l : float
        Feed substrate concentration (mM).
    """

    strain: str
    mode: str
    method: str
    edges: np.ndarray
    feed: np.ndarray
    objective: float
    member_product_mmol: np.ndarray
    initial_objective: float
    members: tuple[int, ...]
    status: str
    success: bool
    iterations: int
    solve_time_s: float
    feed_glucose_mmol_per_l: float

    def profile(self) -> FeedProfile:
        """The feed as a :class:`~mpc_bio.nomad.verification.FeedProfile` for the nonlinear simulator."""
        return FeedProfile(tuple(self.edges[:-1]), tuple(np.maximum(self.feed, 0.0)), self.feed_glucose_mmol_per_l)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "strain": self.strain, "mode": self.mode, "method": self.method,
            "edges_h": self.edges.tolist(), "feed_l_per_h": self.feed.tolist(),
            "objective_mmol": self.objective, "initial_objective_mmol": self.initial_objective,
            "member_product_mmol": self.member_product_mmol.tolist(), "members": list(self.members),
            "status": self.status, "success": self.success, "iterations": self.iterations,
            "solve_time_s": self.solve_time_s, "feed_glucose_mmol_per_l": self.feed_glucose_mmol_per_l,
        }


def batch_problem(settings: FeedSettings) -> BatchProblem:
    """The control layer's :class:`BatchProblem` for these feed settings (objective "product")."""
    return BatchProblem(
        batch_time=settings.batch_time_h, objective="product", feed_min=settings.feed_min_l_per_h,
        feed_max=settings.feed_max_l_per_h, volume_max=settings.volume_max_l, glucose_max=settings.glucose_max_mmol_per_l,
    )


def _chain(km: KineticControlModel, settings: FeedSettings, feed_sym):
    """Symbolic states at the ``constraint_points`` check times of every interval (list of MX)."""
    h = settings.batch_time_h / settings.n_intervals / settings.constraint_points
    m = km.model
    x = ca.SX.sym("x", m.n_x)
    u = ca.SX.sym("u")
    p = ca.SX.sym("p", m.n_p)
    dae = {"x": x, "p": ca.vertcat(u, p), "ode": m.rhs(x, u, p)}
    opts = {"reltol": settings.reltol, "abstol": settings.abstol, "max_num_steps": 100000, "fsens_err_con": False}
    integ = ca.integrator("kinetic_fed_batch", "cvodes", dae, 0.0, h, opts)
    p = ca.DM(km.model.param_values)
    x = ca.DM(km.x0)
    nodes = []
    for k in range(settings.n_intervals):
        for _ in range(settings.constraint_points):
            x = integ(x0=x, p=ca.vertcat(feed_sym[k], p))["xf"]
            nodes.append(x)
    return nodes


def simulate_product_amounts(km: KineticControlModel, settings: FeedSettings, feed) -> np.ndarray:
    """Final product amount of every member under a piecewise-constant feed (mmol), by CVODES."""
    feed = np.broadcast_to(np.asarray(feed, dtype=float), (settings.n_intervals,))
    f = ca.MX.sym("F", settings.n_intervals)
    xT = _chain(km, settings, f)[-1]
    fn = ca.Function("final", [f], [xT])
    x = np.asarray(fn(feed)).reshape(-1)
    return x[list(km.product_index)]


class _JacobianCallback(ca.Callback):
    """Forward finite-difference Jacobian of a numeric function of the scaled feed (in [0, 1])."""

    def __init__(self, name: str, fn: ca.Function, step: float):
        ca.Callback.__init__(self)
        self.fn, self.step = fn, step
        self.construct(name, {})

    def get_n_in(self):
        return 2

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.fn.size1_in(0), 1) if i == 0 else ca.Sparsity.dense(self.fn.size1_out(0), 1)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense(self.fn.size1_out(0), self.fn.size1_in(0))

    def eval(self, args):
        w = np.asarray(args[0], dtype=float).reshape(-1)
        y0 = np.asarray(args[1], dtype=float).reshape(-1)
        jac = np.zeros((y0.size, w.size))
        for j in range(w.size):
            d = self.step if w[j] + self.step <= 1.0 else -self.step
            wj = w.copy()
            wj[j] += d
            jac[:, j] = (np.asarray(self.fn(wj), dtype=float).reshape(-1) - y0) / d
        return [ca.DM(jac)]


class _FiniteDifferenceCallback(ca.Callback):
    """A CVODES simulation of the scaled feed whose Jacobian is taken by forward finite differences.

    CVODES forward sensitivities of the stiff kinetic models fail (error-test failures) on some
    feeds, which stops IPOPT; differences of the simulation itself are robust and, with N feed
    intervals, cost N extra simulations per Jacobian.
    """

    def __init__(self, name: str, fn: ca.Function, step: float):
        ca.Callback.__init__(self)
        self.fn, self.step = fn, step
        self._jac = None
        self.construct(name, {})

    def get_n_in(self):
        return 1

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.fn.size1_in(0), 1)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense(self.fn.size1_out(0), 1)

    def eval(self, args):
        return [self.fn(args[0])]

    def has_jacobian(self):
        return True

    def get_jacobian(self, name, inames, onames, opts):
        self._jac = _JacobianCallback(name, self.fn, self.step)
        return self._jac


def _aggregate(values: np.ndarray, mode: str) -> float:
    return float(np.mean(values)) if mode == "mean" else float(np.min(values))


def optimize_robust_feed(
    km: KineticControlModel,
    settings: FeedSettings,
    *,
    strain: str = "reference",
    mode: str | None = None,
    initial_feed=None,
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
    mode = settings.robust if mode is None else mode
    if mode not in ("mean", "worst"):
        raise ValueError(f"The 'mode' parameter of optimize_robust_feed must be 'mean' or 'worst'. Got {mode!r} instead.")
    N = settings.n_intervals
    T = settings.batch_time_h
    h = T / N
    v0 = float(km.x0[km.volume_index])
    if initial_feed is None:
        initial_feed = np.clip((settings.volume_max_l - v0) / T, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    f0 = np.clip(np.broadcast_to(np.asarray(initial_feed, dtype=float), (N,)).copy(),
                 settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    fs = settings.feed_max_l_per_h
    t0 = time.perf_counter()
    w_sim = ca.MX.sym("F_scaled", N)
    nodes = _chain(km, settings, w_sim * fs)
    gmax, vmax = settings.glucose_max_mmol_per_l, settings.volume_max_l
    glc = [(x[i] - gmax * x[km.volume_index]) / (gmax * vmax) for x in nodes for i in km.glucose_index]
    n_glc = len(glc)
    # derivatives by forward finite differences of the CVODES simulation (step fd_step in the
    # scaled feed): CVODES forward sensitivities fail when glucose runs out (stiff collapse)
    plain = ca.Function("kinetic_batch", [w_sim], [ca.vertcat(*glc, *[nodes[-1][i] for i in km.product_index])])
    sim = _FiniteDifferenceCallback("kinetic_batch_fd", plain, settings.fd_step)
    w_f = ca.MX.sym("F_scaled", N)
    out = sim(w_f)
    products = out[n_glc:]
    prod_fn = ca.Function("products", [w_f], [products])
    glc_fn = ca.Function("glucose_margin", [w_f], [out[:n_glc]])

    def glucose_ok(f_scaled) -> bool:
        try:
            return float(np.max(np.asarray(glc_fn(f_scaled)))) <= 0.0
        except RuntimeError:
            return False

    # start from a feasible guess: the largest fraction a of the initial feed (bisection on a in
    # [0, 1], 12 steps) whose glucose stays under the limit at every check time
    if not glucose_ok(f0 / fs):
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if glucose_ok(mid * f0 / fs) else (lo, mid)
        f0 = np.maximum(lo * f0, settings.feed_min_l_per_h)
    p_init = np.asarray(prod_fn(f0 / fs)).reshape(-1)
    init_obj = _aggregate(p_init, mode)
    j_scale = max(abs(init_obj), 1e-6)
    g = [out[k] for k in range(n_glc)]
    lbg = [-np.inf] * n_glc
    ubg = [0.0] * n_glc
    # volume is linear in the feed: V(T) = V0 + h sum F  (checked at the end, the largest)
    g.append((v0 + h * ca.sum1(w_f * fs)) / vmax)
    lbg.append(-np.inf)
    ubg.append(1.0)
    lbx = [settings.feed_min_l_per_h / fs] * N
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
    opts = {
        "ipopt.max_iter": settings.max_iter, "ipopt.tol": settings.tol, "ipopt.print_level": 0, "ipopt.sb": "yes",
        "print_time": 0, "ipopt.hessian_approximation": "limited-memory", "calc_lam_p": False, "calc_lam_x": False,
    }
    g_all = ca.vertcat(*g)
    solver = ca.nlpsol("codesign_feed", "ipopt", {"x": w, "f": obj, "g": g_all}, opts)
    sol = solver(x0=x0, lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
    st = solver.stats()
    feed = np.clip(np.asarray(sol["x"]).reshape(-1)[:N] * fs, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    status = str(st.get("return_status"))
    try:
        p_opt = np.asarray(prod_fn(feed / fs)).reshape(-1)
        path = ca.Function("path", [w_f], [ca.vertcat(*g[: n_glc + 1])])
        viol = float(np.max(np.asarray(path(feed / fs)).reshape(-1) - np.asarray(ubg[: n_glc + 1])))
    except RuntimeError:
        p_opt, viol = np.full(len(km.product_index), np.nan), np.inf
    # IPOPT can stop early (iteration limit, or CVODES failing inside a trial step): keep the last
    # iterate only if it is feasible and no worse than the (feasible) initial guess
    feasible = viol <= 1e-6 and bool(np.all(np.isfinite(p_opt)))
    if not feasible or _aggregate(p_opt, mode) < init_obj:
        if glucose_ok(f0 / fs):
            feed, p_opt, status = f0, p_init, f"{status} (initial guess kept)"
        elif not feasible:
            status = f"{status} (infeasible)"
    return FeedOptimum(
        strain=strain, mode=mode, method="shooting", edges=np.linspace(0.0, T, N + 1), feed=feed,
        objective=_aggregate(p_opt, mode), member_product_mmol=p_opt, initial_objective=init_obj,
        members=km.members, status=status, success=bool(st.get("success")),
        iterations=int(st.get("iter_count", -1)), solve_time_s=time.perf_counter() - t0,
        feed_glucose_mmol_per_l=km.feed_glucose_mmol_per_l,
    )


def optimize_feed_collocation(km: KineticControlModel, settings: FeedSettings, *, strain: str = "reference") -> FeedOptimum:
    """The control layer's direct collocation (:func:`mpc_bio.control.optimize_feed_profile`) on member 0.

    Objective "product": the final product amount (mmol) of the single member; the returned
    objective is re-evaluated by CVODES (not the collocation value).
    """
    if km.n_members != 1:
        raise ValueError(f"Collocation through the control layer takes a single-member model. Got {km.n_members} members.")
    t0 = time.perf_counter()
    res = optimize_feed_profile(
        km.model, batch_problem(settings), km.x0,
        OfflineSettings(n_intervals=settings.n_intervals, collocation_deg=settings.collocation_deg,
                        max_iter=settings.max_iter, tol=settings.tol),
        sim_dt=settings.batch_time_h / settings.n_intervals,
    )
    feed = np.clip(res.feed, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    p = simulate_product_amounts(km, settings, feed)
    return FeedOptimum(
        strain=strain, mode="mean", method="collocation", edges=res.interval_edges, feed=feed,
        objective=float(p[0]), member_product_mmol=p, initial_objective=float("nan"), members=km.members,
        status=res.status, success=res.success, iterations=res.iterations, solve_time_s=time.perf_counter() - t0,
        feed_glucose_mmol_per_l=km.feed_glucose_mmol_per_l,
    )
