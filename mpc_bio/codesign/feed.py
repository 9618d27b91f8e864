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

Direct collocation of the same problem (Radau, states in linear scale bounded by 0, exact
Hessian) is in :mod:`mpc_bio.codesign.collocation`; :func:`optimize_feed` picks the method from
``FeedSettings.method``. With ``"collocation"`` it runs shooting and collocation from the
initial feed and from the shooting optimum (``collocation_start``) and keeps the best
CVODES-verified feed: collocation converges where the dynamics are smooth, but the Radau
equations across glucose exhaustion (intracellular concentrations moving over 6-10 decades
within minutes) have no solution near the trajectory on affordable meshes, so neither method
dominates there (see that module for the measurements).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.control import BatchProblem
from mpc_bio.nomad.verification import FeedProfile

__all__ = [
    "FeedOptimum",
    "batch_problem",
    "feasible_start",
    "optimize_feed",
    "optimize_robust_feed",
    "simulate_product_amounts",
    "simulate_states",
]


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
    nlp_objective : float
        The objective as the NLP saw it (mmol): for collocation the discretised value, for
        shooting the CVODES value (NaN when the start was kept).
    simulation_mismatch : float
        Largest relative gap over the members between the NLP's final product amounts and the
        CVODES re-simulation of the returned feed (-); 0 up to integrator tolerance for shooting.
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
    nlp_objective: float = float("nan")
    simulation_mismatch: float = float("nan")

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
            "nlp_objective_mmol": self.nlp_objective, "simulation_mismatch": self.simulation_mismatch,
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


def simulate_states(km: KineticControlModel, settings: FeedSettings, feed, times) -> np.ndarray:
    """States of the stacked model at ``times`` (h) under a piecewise-constant feed, by CVODES.

    Parameters
    ----------
    km : KineticControlModel
    settings : FeedSettings
        Batch time, intervals and CVODES tolerances.
    feed : float or array_like (n_intervals,)
        Feed rate per interval (L/h).
    times : array_like
        Output times in [0, batch_time_h] (h), any order.

    Returns
    -------
    ndarray (n_times, n_x)
        States in model units (mmol, gDW, L, -). Raises RuntimeError if CVODES fails.
    """
    T, N = settings.batch_time_h, settings.n_intervals
    feed = np.broadcast_to(np.asarray(feed, dtype=float), (N,))
    times = np.round(np.asarray(times, dtype=float).reshape(-1), 12)
    if times.size and (times.min() < 0 or times.max() > T * (1 + 1e-12)):
        raise ValueError(f"The 'times' parameter of simulate_states must lie in [0, {T}] h. Got [{times.min()}, {times.max()}].")
    edges = np.round(np.linspace(0.0, T, N + 1), 12)
    pts = np.unique(np.concatenate([[0.0], times, edges]))
    m = km.model
    x = ca.SX.sym("x", m.n_x)
    q = ca.SX.sym("q", 2 + m.n_p)  # feed (L/h), segment length (h), model parameters
    # time scaled to s in [0, 1] so one integrator serves every segment length
    integ = ca.integrator("kinetic_segment", "cvodes", {"x": x, "p": q, "ode": q[1] * m.rhs(x, q[0], q[2:])}, 0.0, 1.0,
                          {"reltol": settings.reltol, "abstol": settings.abstol, "max_num_steps": 100000})
    par = np.asarray(m.param_values, dtype=float)
    out = np.empty((pts.size, m.n_x))
    xk = np.asarray(km.x0, dtype=float)
    out[0] = xk
    for i in range(1, pts.size):
        k = min(int(np.searchsorted(edges, pts[i - 1], side="right")) - 1, N - 1)
        xk = np.asarray(integ(x0=xk, p=np.concatenate([[feed[k], pts[i] - pts[i - 1]], par]))["xf"]).reshape(-1)
        out[i] = xk
    return out[np.searchsorted(pts, times)]


def feasible_start(km: KineticControlModel, settings: FeedSettings, initial_feed, mode: str, check_times=None):
    """A start feed that keeps the glucose limit, with its final product amounts.

    The initial feed (default: the constant feed that fills the reactor to ``volume_max`` over
    the batch), clipped to the feed bounds, is scaled by the largest fraction a in [0, 1]
    (bisection, 12 steps) whose CVODES simulation keeps n_glc,m / V <= ``glucose_max`` at every
    check time (default: ``constraint_points`` equally spaced times per interval).

    Returns
    -------
    feed : ndarray (n_intervals,)
        L/h.
    objective : float
        Mean or worst final product amount over the members (mmol).
    products : ndarray (n_members,)
        mmol.
    """
    N, T = settings.n_intervals, settings.batch_time_h
    v0 = float(km.x0[km.volume_index])
    if initial_feed is None:
        initial_feed = np.clip((settings.volume_max_l - v0) / T, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    f0 = np.clip(np.broadcast_to(np.asarray(initial_feed, dtype=float), (N,)).copy(),
                 settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    if check_times is None:
        h = T / N / settings.constraint_points
        check_times = h * np.arange(1, N * settings.constraint_points + 1)
    check_times = np.append(np.asarray(check_times, dtype=float), T)
    gi, iv = list(km.glucose_index), km.volume_index

    def run(f):
        try:
            xs = simulate_states(km, settings, f, check_times)
        except RuntimeError:
            return False, None
        ok = float(np.max(xs[:, gi] / xs[:, [iv]])) <= settings.glucose_max_mmol_per_l
        return ok, xs[-1][list(km.product_index)]

    ok, prod = run(f0)
    if not ok:
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if run(mid * f0)[0] else (lo, mid)
        f0 = np.maximum(lo * f0, settings.feed_min_l_per_h)
        ok, prod = run(f0)
        if prod is None:
            raise RuntimeError(f"CVODES failed on the start feed {f0.tolist()} L/h of strain model {km.members}.")
    return f0, _aggregate(prod, mode), prod


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
    fs = settings.feed_max_l_per_h
    t0 = time.perf_counter()
    # start from a feasible guess (the initial feed scaled down until it keeps the glucose limit)
    f0, init_obj, p_init = feasible_start(km, settings, initial_feed, mode)
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
    nlp_obj = _aggregate(p_opt, mode)
    if not feasible or _aggregate(p_opt, mode) < init_obj:
        if glucose_ok(f0 / fs):
            feed, p_opt, status = f0, p_init, f"{status} (initial guess kept)"
        elif not feasible:
            status = f"{status} (infeasible)"
    # independent re-simulation (other CVODES segmentation) of the returned feed
    try:
        p_check = simulate_states(km, settings, feed, [T])[-1][list(km.product_index)]
        mismatch = float(np.max(np.abs(p_check - p_opt) / np.maximum(np.abs(p_check), 1e-9)))
    except RuntimeError:
        mismatch = float("inf")
    return FeedOptimum(
        strain=strain, mode=mode, method="shooting", edges=np.linspace(0.0, T, N + 1), feed=feed,
        objective=_aggregate(p_opt, mode), member_product_mmol=p_opt, initial_objective=init_obj,
        members=km.members, status=status, success=bool(st.get("success")),
        iterations=int(st.get("iter_count", -1)), solve_time_s=time.perf_counter() - t0,
        feed_glucose_mmol_per_l=km.feed_glucose_mmol_per_l, nlp_objective=nlp_obj, simulation_mismatch=mismatch,
    )


def optimize_feed(
    km: KineticControlModel,
    settings: FeedSettings,
    *,
    strain: str = "reference",
    mode: str | None = None,
    initial_feed=None,
) -> FeedOptimum:
    """The robust feed optimum by ``settings.method``, same arguments and result.

    ``"shooting"``: :func:`optimize_robust_feed`. ``"collocation"``:
    :func:`~mpc_bio.codesign.collocation.optimize_feed_collocation`, started as
    ``settings.collocation_start`` says: ``"initial"`` from ``initial_feed`` alone;
    ``"shooting"`` single shooting first, then collocation from the shooting optimum;
    ``"both"`` shooting, collocation from ``initial_feed`` and collocation from the shooting
    optimum. Of the solves run, the best CVODES-verified objective is returned, with
    ``method = "collocation"``, a status naming every solve and the one kept, ``iterations`` and
    ``solve_time_s`` summed, ``initial_objective`` that of ``initial_feed`` (scaled to keep the
    glucose limit) and ``success`` the IPOPT success of the kept solve.
    """
    if settings.method != "collocation":
        return optimize_robust_feed(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)
    from mpc_bio.codesign.collocation import optimize_feed_collocation

    if settings.collocation_start == "initial":
        return optimize_feed_collocation(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)
    runs = {"shooting": optimize_robust_feed(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)}
    if settings.collocation_start == "both":
        runs["collocation from the initial feed"] = optimize_feed_collocation(
            km, settings, strain=strain, mode=mode, initial_feed=initial_feed)
    runs["collocation from the shooting optimum"] = optimize_feed_collocation(
        km, settings, strain=strain, mode=mode, initial_feed=runs["shooting"].feed)
    kept = max(runs, key=lambda k: runs[k].objective)
    best = runs[kept]
    status = "; ".join(f"{k}: {r.status}, {r.iterations} iterations, {r.objective:.6g} mmol" for k, r in runs.items())
    return dataclasses.replace(
        best, method="collocation", status=f"{status}; kept: {kept}", initial_objective=runs["shooting"].initial_objective,
        iterations=sum(r.iterations for r in runs.values()), solve_time_s=sum(r.solve_time_s for r in runs.values()),
    )
