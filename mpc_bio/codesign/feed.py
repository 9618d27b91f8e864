"""Feed profiles for the kinetic fed-batch: shared optimum and strain-specific robust optimum.

The feed is piecewise constant on ``n_intervals`` equal intervals of the batch. Each candidate
profile is simulated with CVODES through the control layer's integrator
(:func:`mpc_bio.control.make_integrator` on the :class:`~mpc_bio.codesign.model.KineticControlModel`),
chained over the intervals (direct single shooting, exact forward sensitivities), and IPOPT
maximises the final product amount n_P(T) (mmol):

- ``"mean"``: the mean of n_P(T) over the stacked ensemble members;
- ``"worst"``: the smallest n_P(T) over the members (epigraph variable t <= n_P,m(T)).

Constraints (hard, every member at every interval end): glucose concentration
n_glc,m / V <= ``glucose_max`` (mM), volume V <= ``volume_max`` (L), feed bounds (L/h). Because
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
from mpc_bio.control import BatchProblem, OfflineSettings, make_integrator, optimize_feed_profile
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
    """Symbolic states at the interval ends (list of MX) under a symbolic feed vector."""
    h = settings.batch_time_h / settings.n_intervals
    integ = make_integrator(km.model, h, reltol=settings.reltol, abstol=settings.abstol)
    p = ca.DM(km.model.param_values)
    x = ca.DM(km.x0)
    nodes = []
    for k in range(settings.n_intervals):
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
        ``volume_max`` over the batch.

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
    w_f = ca.MX.sym("F_scaled", N)
    nodes = _chain(km, settings, w_f * fs)
    products = ca.vertcat(*[nodes[-1][i] for i in km.product_index])
    prod_fn = ca.Function("products", [w_f], [products])
    p_init = np.asarray(prod_fn(f0 / fs)).reshape(-1)
    init_obj = _aggregate(p_init, mode)
    j_scale = max(abs(init_obj), 1e-6)
    g, lbg, ubg = [], [], []
    gmax, vmax = settings.glucose_max_mmol_per_l, settings.volume_max_l
    for x in nodes:
        V = x[km.volume_index]
        for i in km.glucose_index:
            g.append((x[i] - gmax * V) / (gmax * vmax))
            lbg.append(-np.inf)
            ubg.append(0.0)
    # volume is linear in the feed: V(T) = V0 + h sum F  (checked at the end, the largest)
    g.append((v0 + h * ca.sum1(w_f * fs)) / vmax)
    lbg.append(-np.inf)
    ubg.append(1.0)
    lbx = [settings.feed_min_l_per_h / fs] * N
    ubx = [1.0] * N
    x0 = list(f0 / fs)
    if mode == "mean":
        w = w_f
        obj = -ca.sum1(products) / products.numel() / j_scale
    else:
        t = ca.MX.sym("t")
        w = ca.vertcat(w_f, t)
        obj = -t
        for k in range(products.numel()):
            g.append(t - products[k] / j_scale)
            lbg.append(-np.inf)
            ubg.append(0.0)
        lbx.append(-np.inf)
        ubx.append(np.inf)
        x0.append(float(np.min(p_init)) / j_scale)
    opts = {
        "ipopt.max_iter": settings.max_iter, "ipopt.tol": settings.tol, "ipopt.print_level": 0, "ipopt.sb": "yes",
        "print_time": 0, "ipopt.hessian_approximation": "limited-memory",
    }
    solver = ca.nlpsol("codesign_feed", "ipopt", {"x": w, "f": obj, "g": ca.vertcat(*g)}, opts)
    sol = solver(x0=x0, lbx=lbx, ubx=ubx, lbg=lbg, ubg=ubg)
    st = solver.stats()
    feed = np.clip(np.asarray(sol["x"]).reshape(-1)[:N] * fs, settings.feed_min_l_per_h, settings.feed_max_l_per_h)
    p_opt = np.asarray(prod_fn(feed / fs)).reshape(-1)
    return FeedOptimum(
        strain=strain, mode=mode, method="shooting", edges=np.linspace(0.0, T, N + 1), feed=feed,
        objective=_aggregate(p_opt, mode), member_product_mmol=p_opt, initial_objective=init_obj,
        members=km.members, status=str(st.get("return_status")), success=bool(st.get("success")),
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
