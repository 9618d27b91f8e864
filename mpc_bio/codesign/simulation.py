"""CVODES simulations of the stacked kinetic control model under a piecewise-constant feed.

The feed is piecewise constant on ``n_intervals`` equal intervals of the batch
(``FeedSettings``). :func:`shooting_nodes` chains one integrator symbolically (the single-shooting
transcription), :func:`simulate_product_amounts` and :func:`simulate_states` evaluate it
numerically, and :func:`feasible_start` finds a start feed that keeps the glucose limit. Both
feed optimisers (:mod:`mpc_bio.codesign.shooting`, :mod:`mpc_bio.codesign.collocation`) verify
their optimum with these simulations.
"""

from __future__ import annotations

import casadi as ca
import numpy as np
from mpc_bio.interrupts import check_interrupt

from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.optimum import member_objective
from mpc_bio.codesign.settings import FeedSettings

__all__ = ["feasible_start", "shooting_nodes", "simulate_product_amounts", "simulate_states"]


def shooting_nodes(km: KineticControlModel, settings: FeedSettings, feed_sym):
    """Symbolic states (list of MX) at the ``constraint_points`` check times of every interval.

    One CVODES integrator of length batch_time / n_intervals / constraint_points (h) is
    chained from the model's initial state under the symbolic feed ``feed_sym``
    (n_intervals, L/h): the single-shooting transcription of the batch.
    """
    h = settings.batch_time / settings.n_intervals / settings.constraint_points
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
    xT = shooting_nodes(km, settings, f)[-1]
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
        Output times in [0, batch_time] (h), any order.

    Returns
    -------
    ndarray (n_times, n_x)
        States in model units (mmol, gDW, L, -). Raises RuntimeError if CVODES fails.
    """
    T, N = settings.batch_time, settings.n_intervals
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
    integ = ca.integrator(
        "kinetic_segment",
        "cvodes",
        {"x": x, "p": q, "ode": q[1] * m.rhs(x, q[0], q[2:])},
        0.0,
        1.0,
        {"reltol": settings.reltol, "abstol": settings.abstol, "max_num_steps": 100000},
    )
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
    N, T = settings.n_intervals, settings.batch_time
    v0 = float(km.x0[km.volume_index])
    if initial_feed is None:
        initial_feed = np.clip((settings.volume_max - v0) / T, settings.feed_min, settings.feed_max)
    f0 = np.clip(np.broadcast_to(np.asarray(initial_feed, dtype=float), (N,)).copy(), settings.feed_min, settings.feed_max)
    if check_times is None:
        h = T / N / settings.constraint_points
        check_times = h * np.arange(1, N * settings.constraint_points + 1)
    check_times = np.append(np.asarray(check_times, dtype=float), T)
    gi, iv = list(km.glucose_index), km.volume_index

    def run(f):
        try:
            xs = simulate_states(km, settings, f, check_times)
        except RuntimeError:
            check_interrupt()
            return False, None
        ok = float(np.max(xs[:, gi] / xs[:, [iv]])) <= settings.glucose_max
        return ok, xs[-1][list(km.product_index)]

    ok, prod = run(f0)
    if not ok:
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if run(mid * f0)[0] else (lo, mid)
        f0 = np.maximum(lo * f0, settings.feed_min)
        ok, prod = run(f0)
        if prod is None:
            raise RuntimeError(f"CVODES failed on the start feed {f0.tolist()} L/h of strain model {km.members}.")
    return f0, member_objective(prod, mode), prod
