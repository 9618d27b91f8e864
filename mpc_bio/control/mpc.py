"""Economic feed-rate MPC with do-mpc: build it from settings, step it, record every solve.

The control model is the process right-hand side multiplied by a time-varying "in batch" flag,
so the prediction freezes at the end of the batch and the Mayer term scores the end-of-batch
state (final biomass or product, or productivity) whenever the horizon reaches it. Feed moves are
penalised (do-mpc ``rterm``), the feed is bounded, and the volume, glucose and acetate limits are
soft constraints with a stated linear penalty (``MPCSettings.soft_penalty`` per unit of
violation), so a noisy estimate slightly outside a limit never makes the problem infeasible.

Every step records the IPOPT return status, the iteration count and the wall time. A failed
solve (IPOPT not successful) applies the **shifted previous plan** (the feed the last successful
solve planned for this time), or ``MPCSettings.safe_feed`` when no plan covers it, and is counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.control.model import ControlModel, make_integrator, objective_value
from mpc_bio.control.settings import BatchProblem, ControlError, MPCSettings

__all__ = ["FeedMPC", "MPCStepRecord", "build_mpc"]


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
        self._good_guess = None

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
        """
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        self.mpc.x0 = x0
        self.mpc.u0 = np.array([u0])
        self.mpc.set_initial_guess()
        self.records = []
        self._plan = None
        N, dt = self.settings.n_horizon, self.settings.t_step
        explicit = guess_feed is not None
        if guess_feed is None:
            iv = self.model.index("volume")
            guess_feed = (self.problem.volume_max - x0[iv]) / self.problem.batch_time
        g = np.clip(np.broadcast_to(np.asarray(guess_feed, dtype=float).reshape(-1), (N,)) if np.size(guess_feed) in (1, N)
                    else np.resize(np.asarray(guess_feed, dtype=float), N), self.problem.feed_min, self.problem.feed_max)
        integ = make_integrator(self.model, dt)
        xs = self.mpc.opt_x_num
        scale_x = np.asarray(self.mpc._x_scaling.cat).reshape(-1) if hasattr(self.mpc, "_x_scaling") else np.ones(x0.size)
        x = x0.copy()
        for k in range(N):
            on = self._t_now_for(k) < self.problem.batch_time - 1e-9
            x_next = np.maximum(np.asarray(integ(x0=x, p=np.r_[g[k], self.model.param_values])["xf"]).reshape(-1), 0.0) if on else x
            n_c = len(xs["_x", k, 0])
            for c in range(n_c):
                xs["_x", k, 0, c] = (x if c == 0 else x_next) / scale_x
            xs["_u", k, 0] = g[k] / float(np.asarray(self.mpc._u_scaling.cat).reshape(-1)[0])
            x = x_next
        for c in range(len(xs["_x", N, 0])):
            xs["_x", N, 0, c] = x / scale_x
        if explicit:  # a given plan (e.g. the offline optimum) is also the fallback of the first steps
            self._plan, self._plan_time = g.copy(), 0.0

    def _t_now_for(self, k: int) -> float:
        return k * self.settings.t_step

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
        if self.settings.warm_start and self._plan is not None and mpc.flags["initial_run"]:
            self._shift_guess()
        saved = (ca.DM(mpc.opt_x_num.master), ca.DM(mpc.lam_x_num), ca.DM(mpc.lam_g_num)) if mpc.flags["initial_run"] else None
        tic = time.perf_counter()
        u0 = mpc.make_step(x_hat)
        wall = time.perf_counter() - tic
        stats = mpc.solver_stats
        success = bool(stats.get("success", False))
        status = str(stats.get("return_status", "unknown"))
        iters = int(stats.get("iter_count", -1))
        fallback = ""
        if success:
            # IPOPT's interior-point iterate may sit 1e-9 outside a bound: apply the clipped feed
            feed = float(np.clip(np.asarray(u0).reshape(-1)[0], self.problem.feed_min, self.problem.feed_max))
            self._plan = np.array([float(mpc.opt_x_num_unscaled["_u", k, 0][0]) for k in range(self.settings.n_horizon)])
            self._plan_time = self._t_now
            pred = self._objective_from_solution()
        else:
            k = int(round((self._t_now - self._plan_time) / self.settings.t_step)) if self._plan is not None else -1
            if self._plan is not None and 0 <= k < self._plan.size:
                feed, fallback = float(self._plan[k]), "shifted_plan"
            else:
                feed, fallback = float(self.settings.safe_feed), "safe_feed"
            feed = float(np.clip(feed, self.problem.feed_min, self.problem.feed_max))
            if saved is not None:  # warm start the next solve from the last good solution, not the failed iterate
                mpc.opt_x_num.master = saved[0]
                mpc.lam_x_num, mpc.lam_g_num = saved[1], saved[2]
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
                solver_time=float(stats.get("t_wall_total", float("nan"))),
                solver_cpu_time=float(stats.get("t_proc_total", float("nan"))),
                fallback=fallback,
                predicted_objective=pred,
            )
        )
        return feed

    def _shift_guess(self) -> None:
        """Shift the stored solution one interval forward (the last interval is repeated)."""
        xs = self.mpc.opt_x_num
        N = self.settings.n_horizon
        x_old = [[ca.DM(v) for v in xs["_x", k, 0]] for k in range(N + 1)]
        u_old = [ca.DM(xs["_u", k, 0]) for k in range(N)]
        for k in range(N):
            for c, v in enumerate(x_old[k + 1]):
                xs["_x", k, 0, c] = v
            xs["_u", k, 0] = u_old[min(k + 1, N - 1)]

    def _objective_from_solution(self) -> float:
        names = self.model.state_names
        x_end = np.array([float(self.mpc.opt_x_num_unscaled["_x", -1, 0, -1, n][0]) for n in names])
        return objective_value(self.model, self.problem, x_end)


def _do_mpc_model(model: ControlModel, symvar: str):
    from mpc_bio.process.dompc import import_do_mpc

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


def build_mpc(model: ControlModel, problem: BatchProblem, settings: MPCSettings | None = None, *, x_scale=None) -> FeedMPC:
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

    Returns
    -------
    FeedMPC
        Call :meth:`FeedMPC.reset` with the initial estimate, then :meth:`FeedMPC.step` each sample.
    """
    from mpc_bio.process.dompc import import_do_mpc, quiet_do_mpc

    do_mpc = import_do_mpc()

    settings = settings or MPCSettings()
    symvar = settings.symvar if model.symvar == "SX" else "MX"
    m = _do_mpc_model(model, symvar)
    mpc = do_mpc.controller.MPC(m)
    opts = {
        "ipopt.max_iter": settings.max_iter,
        "ipopt.tol": settings.tol,
        "ipopt.print_level": 0,
        "ipopt.sb": "yes",
        "print_time": 0,
        "record_time": True,
        "ipopt.linear_solver": settings.linear_solver,
    }
    if settings.warm_start:
        opts.update(
            {
                "ipopt.warm_start_init_point": "yes",
                "ipopt.warm_start_bound_push": 1e-6,
                "ipopt.warm_start_mult_bound_push": 1e-6,
                "ipopt.mu_init": 1e-4,
            }
        )
    mpc.settings.n_horizon = settings.n_horizon
    mpc.settings.t_step = settings.t_step
    mpc.settings.state_discretization = "collocation"
    mpc.settings.collocation_type = "radau"
    mpc.settings.collocation_deg = settings.collocation_deg
    mpc.settings.collocation_ni = settings.collocation_ni
    mpc.settings.store_full_solution = False  # the plan is read from opt_x_num directly
    mpc.settings.store_lagr_multiplier = False
    mpc.settings.nlpsol_opts = opts
    mpc.settings.store_solver_stats = []

    mterm = -_mayer_term(m, model, problem) / settings.objective_scale
    mpc.set_objective(mterm=mterm, lterm=ca.DM(0.0))
    mpc.set_rterm(**{model.input_name: settings.move_penalty / settings.objective_scale})

    mpc.bounds["lower", "_u", model.input_name] = problem.feed_min
    mpc.bounds["upper", "_u", model.input_name] = problem.feed_max
    for role in ("glucose", "biomass", "acetate", "product"):
        name = getattr(model.roles, role)
        if name is not None:
            mpc.bounds["lower", "_x", name] = 0.0
    mpc.bounds["lower", "_x", model.roles.volume] = 1e-6
    x = m.x
    pen = settings.soft_penalty / settings.objective_scale
    mpc.set_nl_cons("volume_max", x[model.roles.volume], ub=problem.volume_max, soft_constraint=True, penalty_term_cons=pen)
    mpc.set_nl_cons("glucose_max", m.aux["c_glucose"], ub=(1.0 - settings.backoff) * problem.glucose_max, soft_constraint=True, penalty_term_cons=pen)
    if model.index("acetate") is not None:
        mpc.set_nl_cons("acetate_max", m.aux["c_acetate"], ub=(1.0 - settings.backoff) * problem.acetate_max, soft_constraint=True, penalty_term_cons=pen)
    if x_scale is not None:
        for n, s in zip(model.state_names, np.asarray(x_scale, dtype=float)):
            mpc.scaling["_x", n] = float(s)

    ctrl = FeedMPC(mpc, model, problem, settings, m)
    ctrl._tvp_template = mpc.get_tvp_template()
    mpc.set_tvp_fun(ctrl._tvp_fun)
    ctrl._p_template = mpc.get_p_template(1)
    mpc.set_p_fun(ctrl._p_fun)
    with quiet_do_mpc():
        mpc.setup()
    return ctrl
