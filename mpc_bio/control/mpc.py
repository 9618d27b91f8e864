"""Economic feed-rate MPC with do-mpc: build it from settings, step it, record every solve.

The control model is the process right-hand side multiplied by a time-varying "in batch" flag,
so the prediction freezes at the end of the batch and the Mayer term scores the end-of-batch
state (final biomass or product, or productivity) whenever the horizon reaches it. Feed moves are
penalised (do-mpc ``rterm``), the feed is bounded, and the volume, glucose and acetate limits are
soft constraints with a stated linear penalty (``MPCSettings.soft_penalty`` per unit of
violation), so a noisy estimate slightly outside a limit never makes the problem infeasible.
do-mpc checks them at the start of each interval; the last node of the horizon is constrained
too (added between do-mpc's ``prepare_nlp`` and ``create_nlp``, sharing the last interval's
slack), as in :mod:`mpc_bio.control.network_mpc`: otherwise a plan may break a limit in its last
interval (e.g. a feed dump at the end of the batch), which a later step has to undo.

Initial guesses follow do-mpc's storage: the state at the start of interval k is
``opt_x["_x", k, 0, -1]`` and the collocation points of interval k (Radau times) are
``opt_x["_x", k + 1, 0, j]``. After a reset or a failed solve the guess is simulated from the
estimate under the plan and IPOPT starts cold; after a successful solve the solution, its
soft-constraint slacks and its multipliers are shifted one interval and IPOPT starts warm
(``MPCSettings.warm_start``; two IPOPT instances on the same NLP hold the cold and warm options).

Every step records the IPOPT return status, the iteration count, wall and CPU time. A failed
warm-started solve is repeated once, cold, within the step. A step whose solve still fails
(IPOPT not successful) applies the **shifted previous plan** (the feed the last successful
solve planned for this time), or ``MPCSettings.safe_feed`` when no plan covers it, and is counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.control.model import ControlModel, objective_value
from mpc_bio.control.settings import BatchProblem, ControlError, MPCSettings
from mpc_bio.interrupts import check_interrupt
from mpc_bio.ipopt_options import ipopt_options as _ipopt_defaults

__all__ = ["FeedMPC", "MPCStepRecord", "build_mpc", "ipopt_options", "soft_violation", "limit_bounds", "guess_plan", "fallback_feed"]


@dataclass(frozen=True)
class MPCStepRecord:
    """What one MPC step did.

    Attributes
    ----------
    time : float
        Time of the step [h].
    feed : float
        Feed rate applied until the next step [L/h].
    status : str
        IPOPT return status (e.g. ``"Solve_Succeeded"``).
    success : bool
        Whether IPOPT reported success.
    iterations : int
        IPOPT iterations.
    wall_time : float
        Wall time of the step (solve plus do-mpc bookkeeping) [s].
    solver_time : float
        IPOPT's own wall time ``t_wall_total`` [s].
    solver_cpu_time : float
        IPOPT's process (CPU) time ``t_proc_total`` [s]; less sensitive than wall time to other
        processes competing for the cores.
    cpu_time : float
        CPU time of this process over the whole step (solve plus do-mpc bookkeeping) [s]; it counts
        every thread of the process (e.g. libtorch's), so it can exceed the wall time.
    warm : bool
        Whether the solve was warm started (shifted previous solution and multipliers, IPOPT
        warm-start options); otherwise it started cold from a simulated guess.
    retried : bool
        Whether a failed warm-started solve was repeated cold (from a guess simulated under the
        shifted plan) within the step; ``status``, ``success`` and the times then describe the
        step as a whole (iterations and times summed over both solves).
    fallback : str
        ``""`` when the solution was applied, ``"shifted_plan"`` or ``"safe_feed"`` otherwise.
    predicted_objective : float
        Objective value predicted by the solve (end-of-horizon), in objective units.
    """

    time: float
    feed: float
    status: str
    success: bool
    iterations: int
    wall_time: float
    solver_time: float
    solver_cpu_time: float
    cpu_time: float
    warm: bool
    retried: bool
    fallback: str
    predicted_objective: float


class FeedMPC:
    """A set-up do-mpc MPC on the feed rate with fallback handling; build it with :func:`build_mpc`.

    Attributes
    ----------
    mpc : do_mpc.controller.MPC
        The underlying do-mpc controller.
    records : list of MPCStepRecord
        One record per call of :meth:`step`.
    """

    def __init__(self, mpc, model: ControlModel, problem: BatchProblem, settings: MPCSettings, do_mpc_model):
        self.mpc = mpc
        self.model = model
        self.problem = problem
        self.settings = settings
        self.do_mpc_model = do_mpc_model
        self.records: list[MPCStepRecord] = []
        self._t_now = 0.0
        self._p_now = model.param_values.copy()
        self._plan: np.ndarray | None = None
        self._plan_time = 0.0
        self._solved = False  # a successful solve to warm start from exists
        self._S_cold = None  # IPOPT with cold-start options (set by build_mpc)
        self._S_warm = None  # IPOPT with warm-start options
        self._n_terminal = 0  # constraints appended after do-mpc's (the limits at the last node)
        self._limit_rows: np.ndarray | None = None  # rows of the soft limits in the NLP's constraints

    # do-mpc callbacks
    def _tvp_fun(self, t_now):
        tmpl = self._tvp_template
        for k in range(self.settings.n_horizon + 1):
            tk = self._t_now + k * self.settings.t_step
            tmpl["_tvp", k, "in_batch"] = 1.0 if tk < self.problem.batch_time - 1e-9 else 0.0
        return tmpl

    def _p_fun(self, t_now):
        self._p_template["_p", 0] = self._p_now
        return self._p_template

    @property
    def failures(self) -> int:
        """Number of steps whose solve failed (and used the fallback)."""
        return sum(1 for r in self.records if not r.success)

    def reset(self, x0, u0: float = 0.0, guess_feed=None) -> None:
        """Reset the controller at the start of a batch.

        Parameters
        ----------
        x0 : array_like
            Initial state estimate.
        u0 : float
            Feed applied before the first step [L/h] (reference of the first move penalty).
        guess_feed : float or array_like, optional
            Feed plan [L/h] (one value per interval, or a constant) used to build the initial
            guess of the first solve by simulating the model from ``x0``; by default the
            constant feed that fills the reactor to ``volume_max`` over the batch. A cold start
            with every node at ``x0`` can need hundreds of IPOPT iterations. A given plan is also
            the fallback (``"shifted_plan"``) until the first successful solve.

        Notes
        -----
        do-mpc stores the state at the start of interval k (time t_k) as ``opt_x["_x", k, 0, -1]``
        and the collocation points of interval k (Radau times t_k + tau_j * t_step) as
        ``opt_x["_x", k + 1, 0, j]``; the simulated guess is written there, so the initial guess
        satisfies the collocation equations up to the discretisation error. The multipliers
        start at zero and the first solve uses IPOPT's cold-start options.
        """
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        self.mpc.x0 = x0
        self.mpc.u0 = np.array([u0])
        self.mpc.set_initial_guess()
        self.mpc.flags["initial_run"] = False  # no multipliers to warm start from
        self.records = []
        self._plan = None
        self._t_now = 0.0
        self._p_now = self.model.param_values.copy()
        self._solved = False
        N = self.settings.n_horizon
        explicit = guess_feed is not None
        if guess_feed is None:
            iv = self.model.index("volume")
            guess_feed = (self.problem.volume_max - x0[iv]) / self.problem.batch_time
        g = np.asarray(guess_feed, dtype=float).reshape(-1)
        g = np.broadcast_to(g, (N,)) if g.size == 1 else np.resize(g, N)
        g = np.clip(g, self.problem.feed_min, self.problem.feed_max)
        self._write_simulated_guess(x0, g, 0.0)
        if explicit:  # a given plan (e.g. the offline optimum) is also the fallback of the first steps
            self._plan, self._plan_time = g.copy(), 0.0

    def _interval_times(self) -> np.ndarray:
        """Times of the stored points of one interval, as fractions of ``t_step`` (do-mpc's order)."""
        tau = [0.0, *ca.collocation_points(self.settings.collocation_deg, "radau")]
        ni, deg = self.settings.collocation_ni, self.settings.collocation_deg
        out = [(0 + tau[j]) / ni for j in range(1, deg + 1)]
        for i in range(1, ni):
            out.extend((i + tau[j]) / ni for j in range(deg + 1))
        out.append(1.0)
        return np.array(out)

    def _guess_integrator(self):
        if getattr(self, "_guess_integ", None) is None:
            model = self.model
            sym = ca.MX if model.symvar == "MX" else ca.SX
            x = sym.sym("x", model.n_x)
            u = sym.sym("u", 1)
            p = sym.sym("p", model.n_p)
            dae = {"x": x, "p": ca.vertcat(u, p), "ode": model.rhs(x, u, p)}
            grid = self._interval_times() * self.settings.t_step
            self._guess_integ = ca.integrator(
                "mpc_guess", "cvodes", dae, 0.0, list(grid), {"reltol": 1e-6, "abstol": 1e-9, "max_num_steps": 20000}
            )
        return self._guess_integ

    def _write_simulated_guess(self, x0: np.ndarray, feeds: np.ndarray, t0: float) -> None:
        """Write a guess simulated from ``x0`` under ``feeds`` (one per interval) into ``opt_x_num``."""
        N, dt = self.settings.n_horizon, self.settings.t_step
        integ = self._guess_integrator()
        xs = self.mpc.opt_x_num
        scale_x = np.asarray(self.mpc.opt_x_scaling["_x", 0, 0, -1]).reshape(-1)
        scale_u = float(np.asarray(self.mpc.opt_x_scaling["_u", 0, 0]).reshape(-1)[0])
        n_pts = len(xs["_x", 1, 0])  # 1 + points per interval
        x = np.maximum(np.asarray(x0, dtype=float).reshape(-1), 0.0)
        xs["_x", 0, 0, -1] = x / scale_x
        for c in range(n_pts - 1):  # unused slots of node 0: keep them at x0
            xs["_x", 0, 0, c] = x / scale_x
        for k in range(N):
            on = t0 + k * dt < self.problem.batch_time - 1e-9
            if on:
                try:
                    traj = np.asarray(integ(x0=x, p=np.r_[feeds[k], self._p_now])["xf"]).T
                    traj = np.maximum(traj, 0.0)
                except RuntimeError:  # the simulation failed (e.g. a far-off estimate): hold the state
                    traj = np.repeat(x[None, :], n_pts - 1, axis=0)
            else:
                traj = np.repeat(x[None, :], n_pts - 1, axis=0)
            for c in range(n_pts - 1):
                xs["_x", k + 1, 0, c] = traj[c] / scale_x
            xs["_x", k + 1, 0, -1] = traj[-1] / scale_x
            xs["_u", k, 0] = feeds[k] / scale_u
            if "_eps" in xs.keys() and k < len(xs["_eps"]):
                # soft-constraint slacks at the violation of the guess (checked at the interval's
                # start; the last interval's slack also covers the last node)
                eps = self._soft_violation(x)
                if k == N - 1 and self._n_terminal:
                    eps = np.maximum(eps, self._soft_violation(traj[-1]))
                xs["_eps", k, 0] = eps
            x = traj[-1]

    def plan(self) -> np.ndarray:
        """Feed plan of the last successful solve, one value per interval [L/h] (empty before any)."""
        return np.array([]) if self._plan is None else self._plan.copy()

    def step(self, x_hat, t: float, params=None) -> float:
        """Solve the MPC problem from the state estimate ``x_hat`` at time ``t`` [h] and return the feed [L/h].

        Parameters
        ----------
        x_hat : array_like
            State estimate (model units); negative amounts are clipped to zero.
        t : float
            Current time [h].
        params : array_like, optional
            Model parameters to predict with (e.g. an estimated Vmax); nominal by default.
        """
        x_hat = np.maximum(np.asarray(x_hat, dtype=float).reshape(-1), 0.0)
        if x_hat.size != self.model.n_x:
            raise ControlError(f"x_hat has {x_hat.size} entries, the model has {self.model.n_x} states.")
        self._t_now = float(t)
        if params is not None:
            self._p_now = np.asarray(params, dtype=float).reshape(-1)
        mpc = self.mpc
        self._set_limit_bounds(x_hat)
        warm = self.settings.warm_start and self._solved
        if self._solved:
            self._shift_guess()  # the previous solution, one interval on
        else:
            # after a reset or a failed solve: a guess simulated from the estimate under the
            # shifted plan (or the filling feed)
            self._write_simulated_guess(x_hat, self._guess_plan(x_hat), self._t_now)
        if not warm:  # cold start: zero multipliers, IPOPT's default start options
            mpc.flags["initial_run"] = False
        mpc.S = self._S_warm if warm else self._S_cold
        tic = time.perf_counter()
        cpu_tic = time.process_time()
        u0 = mpc.make_step(x_hat)
        check_interrupt()  # IPOPT turned Ctrl-C/SIGTERM into a failed status: stop, do not retry cold
        stats = mpc.solver_stats
        success = bool(stats.get("success", False))
        iters = int(stats.get("iter_count", -1))
        solver_time = float(stats.get("t_wall_total", float("nan")))
        solver_cpu = float(stats.get("t_proc_total", float("nan")))
        retried = False
        if warm and not success:
            # a warm start far from the new optimum (e.g. after a jump of the parameter estimate)
            # can stall with a tiny barrier parameter: solve again, cold, from a simulated guess
            retried = True
            self._write_simulated_guess(x_hat, self._guess_plan(x_hat), self._t_now)
            mpc.flags["initial_run"] = False
            mpc.S = self._S_cold
            mpc.solve()  # same parameters (estimate, previous feed, flags) as the failed solve
            stats = mpc.solver_stats
            success = bool(stats.get("success", False))
            iters += int(stats.get("iter_count", 0))
            solver_time += float(stats.get("t_wall_total", float("nan")))
            solver_cpu += float(stats.get("t_proc_total", float("nan")))
            u0 = np.asarray(mpc.opt_x_num_unscaled["_u", 0, 0]).reshape(-1)
            mpc.u0 = u0
            mpc.data._u[-1] = u0
        wall = time.perf_counter() - tic
        cpu = time.process_time() - cpu_tic
        status = str(stats.get("return_status", "unknown"))
        fallback = ""
        if success:
            # IPOPT's interior-point iterate may sit 1e-9 outside a bound: apply the clipped feed
            feed = float(np.clip(np.asarray(u0).reshape(-1)[0], self.problem.feed_min, self.problem.feed_max))
            self._plan = np.array([float(mpc.opt_x_num_unscaled["_u", k, 0][0]) for k in range(self.settings.n_horizon)])
            self._plan_time = self._t_now
            self._solved = True
            pred = self._objective_from_solution()
        else:
            feed, fallback = fallback_feed(self._plan, self._plan_time, self._t_now, self.problem, self.settings)
            self._solved = False  # the next solve starts cold from a simulated guess, not the failed iterate
            mpc.u0 = np.array([feed])
            mpc.data._u[-1] = feed  # the history shows the applied feed
            pred = float("nan")
        self.records.append(
            MPCStepRecord(
                time=self._t_now,
                feed=feed,
                status=status,
                success=success,
                iterations=iters,
                wall_time=wall,
                solver_time=solver_time,
                solver_cpu_time=solver_cpu,
                cpu_time=cpu,
                warm=warm,
                retried=retried,
                fallback=fallback,
                predicted_objective=pred,
            )
        )
        return feed

    def _set_limit_bounds(self, x_hat: np.ndarray) -> None:
        """Write this step's bounds of the soft limits (:func:`limit_bounds`) into the NLP's constraint bounds.

        do-mpc orders its constraints as the initial condition, then one equal-sized block per interval
        ending with the soft limits (volume, glucose, acetate), then the limits at the last node.
        """
        m = self.model
        ub_lim = limit_bounds(x_hat, m.index("volume"), m.index("glucose"), m.index("acetate"), self.problem, self.settings)
        ub = np.asarray(self.mpc.nlp_cons_ub).reshape(-1).copy()
        if self._limit_rows is None:
            n_s, N, n_x = ub_lim.size, self.settings.n_horizon, m.n_x
            end = ub.size - self._n_terminal
            b, rem = divmod(end - n_x, N)
            rows = [n_x + k * b + b - n_s + np.arange(n_s) for k in range(N)] if rem == 0 and b >= n_s else []
            if self._n_terminal:
                rows.append(end + np.arange(self._n_terminal))
            nominal = limit_bounds(
                np.zeros(n_x) + np.eye(n_x)[m.index("volume")],
                m.index("volume"),
                m.index("glucose"),
                m.index("acetate"),
                self.problem,
                self.settings,
            )
            if not rows or not all(r.size == n_s and np.allclose(ub[r], nominal) for r in rows):
                raise ControlError("FeedMPC: the soft limits' rows of the do-mpc NLP are not where expected (do-mpc version?).")
            self._limit_rows = np.concatenate(rows)
        ub[self._limit_rows] = np.tile(ub_lim, self._limit_rows.size // ub_lim.size)
        self.mpc.nlp_cons_ub = ca.DM(ub)

    def _soft_violation(self, x: np.ndarray) -> np.ndarray:
        """Violation of each soft constraint at state ``x`` (do-mpc's order), >= 0, in constraint units."""
        m = self.model
        return soft_violation(x, m.index("volume"), m.index("glucose"), m.index("acetate"), self.problem, self.settings.backoff)

    def _guess_plan(self, x_hat: np.ndarray) -> np.ndarray:
        """Feed plan [L/h] for a cold guess: the last plan shifted to now, else the filling feed."""
        volume = float(x_hat[self.model.index("volume")])
        return guess_plan(self._plan, self._plan_time, self._t_now, volume, self.problem, self.settings)

    def _shift_guess(self) -> None:
        """Shift the stored solution and its multipliers one interval forward (last interval repeated).

        Node k takes node k + 1 (the state at the new t_k), the collocation points of interval k
        take those of interval k + 1 (same Radau times relative to the interval), and so do the
        feed, the soft-constraint slacks, the bound multipliers and the constraint multipliers
        (do-mpc orders its constraints as the initial condition then one equal-sized block per
        interval; the limits at the last node follow and keep their multipliers).
        """
        mpc = self.mpc
        _shift_struct(mpc.opt_x_num)
        lam_x = mpc.opt_x(ca.DM(mpc.lam_x_num))
        _shift_struct(lam_x)
        mpc.lam_x_num = lam_x.cat
        lam_g = np.asarray(mpc.lam_g_num).reshape(-1).copy()
        n_x, N = self.model.n_x, self.settings.n_horizon
        end = lam_g.size - self._n_terminal
        b, rem = divmod(end - n_x, N)
        if rem == 0 and b > 0:
            blocks = lam_g[n_x:end].reshape(N, b)
            blocks[:-1] = blocks[1:].copy()
            lam_g[n_x:end] = blocks.reshape(-1)
            mpc.lam_g_num = ca.DM(lam_g)
        else:  # unknown layout: start the constraint multipliers at zero
            mpc.lam_g_num = ca.DM.zeros(lam_g.size)

    def _objective_from_solution(self) -> float:
        names = self.model.state_names
        x_end = np.array([float(self.mpc.opt_x_num_unscaled["_x", -1, 0, -1, n][0]) for n in names])
        return objective_value(self.model, self.problem, x_end)


def ipopt_options(settings: MPCSettings) -> tuple[dict, dict]:
    """IPOPT options of the MPC's cold solves and of its warm-started solves.

    Cold: ``cold_max_iter`` iterations (default ``5 * max_iter``), IPOPT's default start. Warm:
    ``max_iter`` iterations, ``warm_start_init_point`` with small bound pushes and a small initial
    barrier parameter (the shifted solution and multipliers are near the new optimum).

    Both keep the variable bounds exact (``bound_relax_factor = 0``; IPOPT relaxes them by 1e-8
    by default): the amounts are bounded at zero, and the uptakes are not smooth there (the
    distilled spline clamps its inputs at the grid's end, 0; a network may have a kink at zero
    uptake), so iterates a little below zero glucose or oxygen cross the kink and IPOPT can stall
    with tiny steps until its iteration limit.
    """
    opts = _ipopt_defaults(
        settings.max_iter, settings.tol, **{"ipopt.linear_solver": settings.linear_solver, "ipopt.bound_relax_factor": 0.0}
    )
    cold_iter = settings.cold_max_iter if settings.cold_max_iter is not None else 5 * settings.max_iter
    warm = {
        **opts,
        "ipopt.warm_start_init_point": "yes",
        "ipopt.warm_start_bound_push": 1e-6,
        "ipopt.warm_start_mult_bound_push": 1e-6,
        "ipopt.mu_init": 1e-4,
    }
    return {**opts, "ipopt.max_iter": cold_iter}, warm


def soft_violation(x, iv: int, ig: int, ia: int | None, problem: BatchProblem, backoff: float) -> np.ndarray:
    """Violation (>= 0) of the soft limits at state ``x``: volume [L], glucose and acetate [mmol/L].

    ``iv``, ``ig``, ``ia`` index the volume, glucose and acetate amounts in ``x`` (``ia`` None: no
    acetate limit); the concentration limits are backed off to ``(1 - backoff) * limit``.
    """
    vol = max(float(x[iv]), 1e-9)
    viol = [float(x[iv]) - problem.volume_max, float(x[ig]) / vol - (1.0 - backoff) * problem.glucose_max]
    if ia is not None:
        viol.append(float(x[ia]) / vol - (1.0 - backoff) * problem.acetate_max)
    return np.maximum(np.array(viol, dtype=float), 0.0)


def limit_bounds(x, iv: int, ig: int, ia: int | None, problem: BatchProblem, settings: MPCSettings) -> np.ndarray:
    """Upper bounds of the soft limits planned against from the estimate ``x``: volume [L], glucose and acetate [mmol/L].

    The concentration limits are backed off to ``(1 - backoff) * limit``; with ``MPCSettings.hold_margin`` a
    concentration of ``x`` already above that is its own bound (at most the limit itself).
    """
    vol = max(float(x[iv]), 1e-9)
    lims = [(ig, problem.glucose_max)] + ([(ia, problem.acetate_max)] if ia is not None else [])
    out = [problem.volume_max]
    for i, lim in lims:
        ub = (1.0 - settings.backoff) * lim
        if settings.hold_margin:
            ub = min(lim, max(ub, float(x[i]) / vol))
        out.append(ub)
    return np.array(out, dtype=float)


def guess_plan(plan, plan_time: float, t: float, volume: float, problem: BatchProblem, settings: MPCSettings) -> np.ndarray:
    """Feed plan [L/h] of a cold guess at time ``t``: ``plan`` (made at ``plan_time``) shifted to ``t``
    and its last value repeated, else the constant feed filling the reactor from ``volume`` [L] by
    the end of the batch."""
    N = settings.n_horizon
    if plan is not None:
        k = int(round((t - plan_time) / settings.t_step))
        if 0 <= k < plan.size:
            rest = plan[k:]
            return np.r_[rest, np.repeat(rest[-1], N - rest.size)]
    left = max(problem.batch_time - t, settings.t_step)
    return np.full(N, np.clip((problem.volume_max - volume) / left, problem.feed_min, problem.feed_max))


def fallback_feed(plan, plan_time: float, t: float, problem: BatchProblem, settings: MPCSettings) -> tuple[float, str]:
    """Feed [L/h] after a failed solve and its kind: the shifted plan's value, else ``safe_feed``."""
    k = int(round((t - plan_time) / settings.t_step)) if plan is not None else -1
    if plan is not None and 0 <= k < plan.size:
        feed, kind = float(plan[k]), "shifted_plan"
    else:
        feed, kind = float(settings.safe_feed), "safe_feed"
    return float(np.clip(feed, problem.feed_min, problem.feed_max)), kind


def _shift_struct(st) -> None:
    """Shift every repeated entry of a do-mpc ``opt_x``-shaped struct one stage forward, in place."""
    for key in st.keys():
        n = len(st[key])
        if n < 2:
            continue
        old = [ca.DM(st[key, k, 0]) if not isinstance(st[key, k, 0], list) else [ca.DM(v) for v in st[key, k, 0]] for k in range(n)]
        for k in range(n - 1):
            src = old[k + 1]
            if isinstance(src, list):
                for c, v in enumerate(src):
                    st[key, k, 0, c] = v
            else:
                st[key, k, 0] = src


def _do_mpc_model(model: ControlModel, symvar: str):
    from mpc_bio.control.dompc import import_do_mpc

    do_mpc = import_do_mpc()

    m = do_mpc.model.Model("continuous", symvar)
    xs = [m.set_variable("_x", n) for n in model.state_names]
    u = m.set_variable("_u", model.input_name)
    ps = [m.set_variable("_p", n) for n in model.param_names]
    flag = m.set_variable("_tvp", "in_batch")
    x = ca.vertcat(*xs)
    p = ca.vertcat(*ps) if ps else (ca.SX(0, 1) if symvar == "SX" else ca.MX(0, 1))
    dx = flag * model.rhs(x, u, p)
    for i, n in enumerate(model.state_names):
        m.set_rhs(n, dx[i])
    vol = xs[model.index("volume")]
    m.set_expression("c_glucose", xs[model.index("glucose")] / vol)
    if model.index("acetate") is not None:
        m.set_expression("c_acetate", xs[model.index("acetate")] / vol)
    m.setup()
    return m


def _mayer_term(m, model: ControlModel, problem: BatchProblem):
    x = m.x
    if problem.objective == "biomass":
        return x[model.roles.biomass]
    if problem.objective == "product":
        if model.roles.product is None:
            raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
        return x[model.roles.product]
    return x[model.roles.biomass] / x[model.roles.volume] / problem.batch_time


def _limit_exprs(model: ControlModel, problem: BatchProblem, settings: MPCSettings, x) -> list[tuple[str, object, float]]:
    """The soft limits as (name, expression of the state ``x``, upper bound): volume [L], glucose
    and acetate concentrations [mmol/L], the concentrations backed off by ``settings.backoff``."""
    vol = x[model.index("volume")]
    out = [
        ("volume_max", vol, problem.volume_max),
        ("glucose_max", x[model.index("glucose")] / vol, (1.0 - settings.backoff) * problem.glucose_max),
    ]
    if model.index("acetate") is not None:
        out.append(("acetate_max", x[model.index("acetate")] / vol, (1.0 - settings.backoff) * problem.acetate_max))
    return out


def _add_terminal_limits(mpc, model: ControlModel, problem: BatchProblem, settings: MPCSettings) -> int:
    """Append the soft limits at the horizon's last node to a prepared do-mpc NLP; returns their number.

    do-mpc (5.1.2) constrains ``set_nl_cons`` expressions at the start of each interval only (its
    terminal nonlinear constraints are a TODO; ``terminal_bounds`` are hard bounds on states, which
    a noisy estimate past a limit would make infeasible). Between ``prepare_nlp`` and
    ``create_nlp`` (do-mpc's route for custom constraints) the limits are added at the last node,
    softened by the last interval's slacks: its linear penalty then counts the larger of the two
    violations.
    """
    N = settings.n_horizon
    x_end = mpc.opt_x_unscaled["_x", N, 0, -1]
    cons, ubs = [], []
    for name, expr, ub in _limit_exprs(model, problem, settings, x_end):
        cons.append(expr - mpc.opt_x_unscaled["_eps", N - 1, 0, name])
        ubs.append(ub)
    mpc.nlp_cons.append(ca.vertcat(*cons))
    mpc.nlp_cons_lb.append(np.full((len(cons), 1), -np.inf))
    mpc.nlp_cons_ub.append(np.array(ubs, dtype=float).reshape(-1, 1))
    return len(cons)


def build_mpc(
    model: ControlModel, problem: BatchProblem, settings: MPCSettings | None = None, *, x_scale=None, terminal_limits: bool = True
) -> FeedMPC:
    """Build and set up the economic feed-rate MPC.

    Parameters
    ----------
    model : ControlModel
        The control model (its right-hand side is embedded in do-mpc's collocation NLP).
    problem : BatchProblem
        Objective, batch time, bounds and limits.
    settings : MPCSettings, optional
        Horizon, collocation, penalties, IPOPT options.
    x_scale : array_like, optional
        Typical magnitude of each state (do-mpc variable scaling); defaults to none.
    terminal_limits : bool
        Also soft-limit the volume, glucose and acetate at the horizon's last node (default);
        ``False`` keeps do-mpc's constraints at the start of each interval only.

    Returns
    -------
    FeedMPC
        Call :meth:`FeedMPC.reset` with the initial estimate, then :meth:`FeedMPC.step` each sample.
    """
    from mpc_bio.control.dompc import import_do_mpc, quiet_do_mpc

    do_mpc = import_do_mpc()

    settings = settings or MPCSettings()
    symvar = settings.symvar if model.symvar == "SX" else "MX"
    m = _do_mpc_model(model, symvar)
    mpc = do_mpc.controller.MPC(m)
    cold_opts, warm_opts = ipopt_options(settings)
    mpc.settings.n_horizon = settings.n_horizon
    mpc.settings.t_step = settings.t_step
    mpc.settings.state_discretization = "collocation"
    mpc.settings.collocation_type = "radau"
    mpc.settings.collocation_deg = settings.collocation_deg
    mpc.settings.collocation_ni = settings.collocation_ni
    mpc.settings.store_full_solution = False  # the plan is read from opt_x_num directly
    mpc.settings.store_lagr_multiplier = False
    mpc.settings.nlpsol_opts = cold_opts
    mpc.settings.store_solver_stats = []

    mterm = -_mayer_term(m, model, problem) / settings.objective_scale
    mpc.set_objective(mterm=mterm, lterm=ca.DM(0.0))
    mpc.set_rterm(**{model.input_name: settings.move_penalty / settings.objective_scale})

    mpc.bounds["lower", "_u", model.input_name] = problem.feed_min
    mpc.bounds["upper", "_u", model.input_name] = problem.feed_max
    for name in model.state_names:  # every state is an amount (L, mmol, gDW): never negative
        mpc.bounds["lower", "_x", name] = 0.0
    mpc.bounds["lower", "_x", model.roles.volume] = 1e-6
    pen = settings.soft_penalty / settings.objective_scale
    for name, expr, ub in _limit_exprs(model, problem, settings, m.x.cat):
        mpc.set_nl_cons(name, expr, ub=ub, soft_constraint=True, penalty_term_cons=pen)
    if x_scale is not None:
        for n, s in zip(model.state_names, np.asarray(x_scale, dtype=float)):
            mpc.scaling["_x", n] = float(s)

    ctrl = FeedMPC(mpc, model, problem, settings, m)
    ctrl._tvp_template = mpc.get_tvp_template()
    mpc.set_tvp_fun(ctrl._tvp_fun)
    ctrl._p_template = mpc.get_p_template(1)
    mpc.set_p_fun(ctrl._p_fun)
    with quiet_do_mpc():
        mpc.prepare_nlp()
        ctrl._n_terminal = _add_terminal_limits(mpc, model, problem, settings) if terminal_limits else 0
        mpc.create_nlp()
    # do-mpc's solver has the cold-start options (first solve, and after a failure); a second
    # IPOPT instance on the same NLP has the warm-start options for the shifted solutions
    ctrl._S_cold = mpc.S
    ctrl._S_warm = ca.nlpsol("S_warm", "ipopt", mpc.nlp, warm_opts) if settings.warm_start else mpc.S
    return ctrl
