"""Closed loop: plant -> sampled noisy measurements -> estimator -> MPC -> feed -> plant.

The MPC always receives the estimate (never the true state) unless the estimator kind is
``"none"``. The plant is the control model itself (nominal), the control model with perturbed
parameters (mismatch), or any object with a ``step(x, feed, dt) -> states`` method, e.g. an
adapter around the LP-in-the-loop dFBA simulator. With ``MPCSettings.robust_std`` > 0 and Vmax
estimated, the MPC's feed passes :class:`RobustFeedCap` before it is applied (the capped steps are in
``info["capped_feeds"]``); the MPC's own record keeps the feed it planned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from mpc_bio.control.estimation import MeasurementRecord, MeasurementSampler, build_estimator, measurement_function
from mpc_bio.control.model import ControlModel, constraint_margins, make_integrator, objective_value
from mpc_bio.control.mpc import FeedMPC, MPCStepRecord, build_mpc
from mpc_bio.interrupts import check_interrupt
from mpc_bio.control.settings import (
    BatchProblem,
    ClosedLoopSettings,
    ControlError,
    EstimatorSettings,
    MeasurementSettings,
    MPCSettings,
)

__all__ = ["ClosedLoopResult", "IntegratorPlant", "RobustFeedCap", "run_closed_loop", "estimation_rmse"]


class IntegratorPlant:
    """The plant as the control model integrated with CVODES (possibly with perturbed parameters).

    Parameters
    ----------
    model : ControlModel
    params : array_like
        Plant parameters.
    dt : float
        Control step [h].
    substeps : int
        Number of stored states per step (trajectory resolution).
    """

    name = "model"

    def __init__(self, model: ControlModel, params, dt: float, substeps: int = 5):
        self.model = model
        self.params = np.asarray(params, dtype=float).reshape(-1)
        self.integ = make_integrator(model, dt, n_out=substeps)
        self.events: list[str] = []

    def step(self, x, feed: float, dt: float) -> np.ndarray:
        """States at the substeps of one step (shape (substeps, n_x)); amounts clipped at zero."""
        xf = np.asarray(self.integ(x0=np.asarray(x, dtype=float), p=np.r_[feed, self.params])["xf"])
        return np.maximum(xf.T, 0.0)


class RobustFeedCap:
    """Caps a feed so that the limits hold if the estimated parameter is off (``MPCSettings.robust_std``).

    A feed cannot be taken back: glucose fed while the glucose Vmax is still uncertain is taken up, and
    overflows to acetate, at the plant's rate. The cap checks the MPC's feed for the parameter at the
    estimate -/+ ``robust_std`` standard deviations (inside ``ControlModel.param_bounds``): the model
    (CVODES, ``n_out`` points per step) is simulated from the estimate over the MPC's horizon (to the end
    of the batch at most), the feed for one step followed by a continuation, and the largest relative
    violation of the limits (glucose and acetate backed off by ``MPCSettings.backoff``, as in the MPC;
    volume) is taken. Two continuations are tried per parameter value, and the better one counts (a
    recourse the later steps can take): ``feed_min`` throughout, and the MPC's own plan for the later
    steps (feeding on dilutes, and keeps the uptake glucose-limited, where stopping would let the
    glucose left overflow). The feed is kept when that violation, the worse of the two parameter values,
    is no larger than with ``feed_min`` as this step's feed (plus ``tol``); otherwise it is cut by
    bisection to the largest feed that passes. The estimate itself is the MPC's business: only the two
    off-estimate values are checked, so with a zero standard deviation the feed passes unchanged.

    Parameters
    ----------
    model : ControlModel
        The controller's model (parameter ``model.roles.vmax`` is the estimated one).
    problem : BatchProblem
    settings : MPCSettings
    n_out : int
        Checked points per step.
    tol : float
        Violation [-] a feed may add to that of ``feed_min``.
    bisections : int
        Bisection steps (resolution ``feed * 2**-bisections``).
    """

    def __init__(
        self, model: ControlModel, problem: BatchProblem, settings: MPCSettings, *, n_out: int = 4, tol: float = 1e-3, bisections: int = 12
    ):
        if model.roles.vmax is None:
            raise ControlError(
                f"MPCSettings.robust_std={settings.robust_std} needs ReactorRoles.vmax to name a parameter of the model; "
                f"parameters are {list(model.param_names)}."
            )
        self.model, self.problem, self.settings = model, problem, settings
        self.ip = model.param_index(model.roles.vmax)
        self.integ = make_integrator(model, settings.t_step, n_out=n_out)
        self.tol, self.bisections = float(tol), int(bisections)

    def scenarios(self, params, param_std: float) -> list[np.ndarray]:
        """The parameter vectors checked: the estimate -/+ ``robust_std * param_std`` (inside the bounds)."""
        lo, hi = self.model.param_bounds[self.ip]
        out = []
        for sign in (-1.0, 1.0):
            p = np.asarray(params, dtype=float).copy()
            p[self.ip] = float(np.clip(p[self.ip] + sign * self.settings.robust_std * param_std, lo, hi))
            out.append(p)
        return out

    def _simulate(self, x_hat, feeds, p) -> float:
        """Largest relative violation [-] of the (backed-off) limits under ``feeds`` (one per step); inf if CVODES fails."""
        st = self.settings
        b = {"volume": 0.0, "glucose": st.backoff, "acetate": st.backoff}
        worst, x = 0.0, np.maximum(np.asarray(x_hat, dtype=float), 0.0)
        for f in feeds:
            try:
                xs = np.maximum(np.asarray(self.integ(x0=x, p=np.r_[f, p])["xf"]).T, 0.0)
            except RuntimeError:
                check_interrupt()
                return float("inf")
            for name, m in constraint_margins(self.model, self.problem, xs).items():
                worst = max(worst, float(np.max(b[name] - m)))
            x = xs[-1]
        return worst

    def violation(self, x_hat, t: float, feed: float, scenarios, plan=None) -> float:
        """Largest relative violation [-] of the (backed-off) limits over the scenarios with ``feed`` for one step,
        each scenario with the better of its two continuations (``feed_min``; ``plan[1:]``, the MPC's later feeds)."""
        st, pr = self.settings, self.problem
        n = max(1, min(st.n_horizon, int(round((pr.batch_time - t) / st.t_step))))
        rests = [np.full(n - 1, pr.feed_min)]
        if plan is not None and len(plan) >= n:
            rests.append(np.clip(np.asarray(plan, dtype=float)[1:n], pr.feed_min, pr.feed_max))
        return max(min(self._simulate(x_hat, np.r_[feed, r], p) for r in rests) for p in scenarios)

    def __call__(self, x_hat, t: float, feed: float, params, param_std: float, plan=None) -> float:
        """The feed [L/h] to apply instead of the MPC's ``feed`` at time ``t`` [h] from the estimate ``x_hat``;
        ``plan``: the MPC's plan of this step (one feed per interval from ``t``), a continuation to try."""
        lo = self.problem.feed_min
        if param_std <= 0.0 or self.settings.robust_std <= 0.0 or feed <= lo:
            return float(feed)
        sc = self.scenarios(params, param_std)
        allowed = self.violation(x_hat, t, lo, sc, plan) + self.tol
        if self.violation(x_hat, t, feed, sc, plan) <= allowed:
            return float(feed)
        a, b = lo, float(feed)  # a passes, b does not
        for _ in range(self.bisections):
            mid = 0.5 * (a + b)
            if self.violation(x_hat, t, mid, sc, plan) <= allowed:
                a = mid
            else:
                b = mid
        return float(a)


@dataclass(frozen=True, eq=False)
class ClosedLoopResult:
    """A closed-loop run.

    Attributes
    ----------
    time : ndarray, shape (n+1,)
        Control-step times [h].
    true_states, estimates : ndarray, shape (n+1, n_x)
        True plant state and estimate at the control steps.
    estimated_params : ndarray, shape (n+1, n_p)
        Model parameters used by the MPC at each step (estimated Vmax where enabled).
    fine_time, fine_states : ndarray
        True plant trajectory at the integrator substeps.
    feed : ndarray, shape (n,)
        Applied feed [L/h] on each step.
    measurements : MeasurementRecord
    mpc_records : tuple of MPCStepRecord
    estimator_times : ndarray, shape (n+1,)
        Wall time of each estimator update [s].
    objective : float
        True batch objective at the end.
    violation : float
        Largest relative violation of the volume/glucose/acetate limits along the true trajectory.
    state_names : tuple of str
    quantities : tuple of str
        Measured quantities.
    true_outputs, estimated_outputs : ndarray, shape (n+1, m)
        The measured quantities (volume, concentrations) of the true state and of the estimate.
    info : dict
        Settings and plant description for the summary.
    """

    time: np.ndarray
    true_states: np.ndarray
    estimates: np.ndarray
    estimated_params: np.ndarray
    fine_time: np.ndarray
    fine_states: np.ndarray
    feed: np.ndarray
    measurements: MeasurementRecord
    mpc_records: tuple[MPCStepRecord, ...]
    estimator_times: np.ndarray
    objective: float
    violation: float
    state_names: tuple[str, ...]
    quantities: tuple[str, ...]
    true_outputs: np.ndarray
    estimated_outputs: np.ndarray
    margins: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def solver_failures(self) -> int:
        """Number of MPC steps whose IPOPT solve failed (fallback applied)."""
        return sum(1 for r in self.mpc_records if not r.success)

    def output(self, quantity: str, which: str = "true") -> np.ndarray:
        """A measured quantity over the control steps: ``which`` = ``"true"``, ``"estimate"`` or ``"measured"``."""
        j = self.quantities.index(quantity)
        src = {"true": self.true_outputs, "estimate": self.estimated_outputs, "measured": self.measurements.values}[which]
        return src[:, j]

    def concentration(self, state: str, which: str = "true") -> np.ndarray:
        """Concentration ``state / V`` (mmol/L or gDW/L) of the true state or of the estimate."""
        X = self.true_states if which == "true" else self.estimates
        iv = self.state_names.index(self.info.get("volume_state", "V"))
        return X[:, self.state_names.index(state)] / X[:, iv]

    def step_times_ms(self) -> np.ndarray:
        """Wall time of each MPC step [ms]."""
        return np.array([r.wall_time * 1e3 for r in self.mpc_records])

    def step_cpu_times_ms(self) -> np.ndarray:
        """CPU time of this process over each MPC step [ms] (every thread counted)."""
        return np.array([getattr(r, "cpu_time", float("nan")) * 1e3 for r in self.mpc_records])

    def summary(self, rmse_after: float = 2.0) -> dict:
        """JSON-ready summary: objective, solver statistics, estimation RMSE after ``rmse_after`` h."""
        ms = self.step_times_ms()
        cpu = self.step_cpu_times_ms()
        rmse = estimation_rmse(self, rmse_after)
        noise = dict(zip(self.measurements.quantities, self.measurements.noise_std.tolist()))
        return {
            "objective": self.objective,
            "constraint_violation": self.violation,
            "mpc_steps": len(self.mpc_records),
            "solver_failures": self.solver_failures,
            "fallbacks": [r.fallback for r in self.mpc_records if r.fallback],
            "mpc_step_ms_median": float(np.median(ms)) if ms.size else float("nan"),
            "mpc_step_ms_p95": float(np.percentile(ms, 95)) if ms.size else float("nan"),
            "mpc_step_cpu_ms_median": float(np.nanmedian(cpu)) if np.isfinite(cpu).any() else float("nan"),
            "mpc_warm_steps": sum(1 for r in self.mpc_records if getattr(r, "warm", False)),
            "mpc_iterations_median": float(np.median([r.iterations for r in self.mpc_records])) if ms.size else float("nan"),
            "estimator_ms_median": float(np.median(self.estimator_times) * 1e3),
            "est_rmse": rmse,
            "rmse_after_h": rmse_after,
            "measurement_noise_std": noise,
            "dropped_samples": int(self.measurements.dropped.sum()),
            "final_state": dict(zip(self.state_names, self.true_states[-1].tolist())),
            **self.info,
        }

    def to_frames(self) -> dict:
        """Tidy tables (pandas DataFrames): ``trajectory``, ``fine``, ``solver``."""
        import pandas as pd

        traj = pd.DataFrame({"time_h": self.time})
        for i, n in enumerate(self.state_names):
            traj[f"true_{n}"] = self.true_states[:, i]
            traj[f"est_{n}"] = self.estimates[:, i]
        for j, q in enumerate(self.quantities):
            traj[f"true_{q}"] = self.true_outputs[:, j]
            traj[f"est_{q}"] = self.estimated_outputs[:, j]
            traj[f"meas_{q}"] = self.measurements.values[:, j]
            traj[f"dropped_{q}"] = self.measurements.dropped[:, j]
        traj["feed_L_per_h"] = np.r_[self.feed, np.nan]
        for k, v in self.margins.items():
            traj[f"margin_{k}"] = v
        fine = pd.DataFrame({"time_h": self.fine_time})
        for i, n in enumerate(self.state_names):
            fine[n] = self.fine_states[:, i]
        solver = pd.DataFrame([r.__dict__ for r in self.mpc_records])
        return {"trajectory": traj, "fine": fine, "solver": solver}


def _estimator_status_summary(est) -> dict:
    """Solver statuses of an optimisation-based estimator (MHE): counts per IPOPT status, failures."""
    statuses = list(getattr(est, "statuses", []) or [])
    if est is None or not hasattr(est, "statuses"):
        return {"estimator_solves": 0, "estimator_statuses": {}, "estimator_failures": 0}
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st] = counts.get(st, 0) + 1
    ok = getattr(est, "successes", None)
    fails = sum(1 for v in ok if not v) if ok is not None else sum(1 for st in statuses if st != "Solve_Succeeded")
    return {"estimator_solves": len(statuses), "estimator_statuses": counts, "estimator_failures": fails}


def estimation_rmse(result: ClosedLoopResult, after: float = 2.0) -> dict:
    """RMSE of the estimated measured quantities (channel units) at steps with ``time >= after`` h."""
    sel = result.time >= after - 1e-9
    out = {}
    for j, q in enumerate(result.quantities):
        err = result.estimated_outputs[sel, j] - result.true_outputs[sel, j]
        out[q] = float(np.sqrt(np.mean(err**2))) if err.size else float("nan")
    return out


def run_closed_loop(
    model: ControlModel,
    problem: BatchProblem,
    x0,
    *,
    mpc_settings: MPCSettings | None = None,
    estimator_settings: EstimatorSettings | None = None,
    measurement_settings: MeasurementSettings | None = None,
    settings: ClosedLoopSettings | None = None,
    plant=None,
    mpc: FeedMPC | None = None,
    x_scale=None,
    n_steps: int | None = None,
    guess_feed=None,
) -> ClosedLoopResult:
    """Run the closed loop over the batch (or ``n_steps`` control steps).

    Parameters
    ----------
    model : ControlModel
        The controller's (and estimator's) model.
    problem : BatchProblem
    x0 : array_like
        True initial state of the plant.
    mpc_settings, estimator_settings, measurement_settings, settings
        Component settings (defaults when None).
    plant : object, optional
        Any object with ``step(x, feed, dt) -> states`` (shape (substeps, n_x)); required when
        ``settings.plant == "dfba"``; otherwise built from the settings.
    mpc : FeedMPC, optional
        A prebuilt controller (re-used across runs; it is reset here).
    x_scale : array_like, optional
        Typical state magnitudes (MHE weights).
    n_steps : int, optional
        Number of control steps (default: the whole batch).
    guess_feed : float or array_like, optional
        Feed plan [L/h] for the initial guess of the first MPC solve (e.g. the offline optimum
        resampled to the MPC steps); see :meth:`FeedMPC.reset`.

    Returns
    -------
    ClosedLoopResult
    """
    mpc_settings = mpc_settings or (mpc.settings if mpc is not None else MPCSettings())
    est_settings = estimator_settings or EstimatorSettings()
    meas_settings = measurement_settings or MeasurementSettings()
    settings = settings or ClosedLoopSettings()
    dt = mpc_settings.t_step
    n_batch = int(round(problem.batch_time / dt))
    if abs(n_batch * dt - problem.batch_time) > 1e-9 * problem.batch_time:
        raise ControlError(f"MPCSettings.t_step={dt} h must divide BatchProblem.batch_time={problem.batch_time} h.")
    n = n_batch if n_steps is None else int(n_steps)
    x_true = np.asarray(x0, dtype=float).reshape(-1).copy()
    if plant is None:
        if settings.plant == "dfba":
            raise ControlError("ClosedLoopSettings.plant='dfba' needs a plant object (e.g. an LP-in-the-loop dFBA adapter).")
        params = model.params_with(settings.plant_parameter_scale) if settings.plant == "perturbed" else model.param_values
        plant = IntegratorPlant(model, params, dt, settings.plant_substeps)
    if mpc is None:
        if mpc_settings.backend in ("network", "network_taylor"):
            raise ControlError(
                f"MPCSettings.backend={mpc_settings.backend!r} needs the surrogate and the reactor: pass "
                "mpc=mpc_bio.control.network_mpc.build_network_mpc(reactor, surrogate, problem, settings)."
            )
        mpc = build_mpc(model, problem, mpc_settings, x_scale=x_scale)

    x_hat0 = x_true * (1.0 + est_settings.initial_error)
    iv = model.index("volume")
    x_hat0[iv] = x_true[iv]
    sampler = MeasurementSampler(model, meas_settings, dt)
    est = None
    if est_settings.kind != "none":
        est = build_estimator(model, est_settings, meas_settings, dt, x_hat0, x_scale)
    mpc.reset(x_hat0 if est is not None else x_true, u0=0.0, guess_feed=guess_feed)
    cap = RobustFeedCap(model, problem, mpc_settings) if mpc_settings.robust_std > 0 and est_settings.estimate_vmax else None
    capped = []  # (time h, MPC feed, applied feed) of the steps whose feed was cut
    cap_cpu = []  # CPU time of the cap per step [s]
    h_out = measurement_function(model, sampler.quantities)

    times = [0.0]
    trues = [x_true.copy()]
    ests, pars, meas, due, drop, est_t = [], [], [], [], [], []
    fine_t, fine_x = [0.0], [x_true.copy()]
    feeds = []
    u_prev = None
    iterator = tqdm(range(n + 1), desc="closed loop", disable=not settings.progress, leave=False)
    for k in iterator:
        t = k * dt
        y, d_, dr = sampler.sample(k, x_true)
        meas.append(y)
        due.append(d_)
        drop.append(dr)
        tic = time.perf_counter()
        if est is None:
            x_hat, p_hat = x_true.copy(), model.param_values.copy()
        else:
            x_hat = est.update(y, u_prev)
            p_hat = est.params
            check_interrupt()  # a solver may have turned Ctrl-C/SIGTERM into a failed solve
        est_t.append(time.perf_counter() - tic)
        ests.append(x_hat.copy())
        pars.append(p_hat.copy())
        if k == n:
            break
        f = mpc.step(x_hat, t, params=p_hat)
        check_interrupt()
        if cap is not None:
            plan = mpc.plan() if mpc.records and mpc.records[-1].success else None  # this step's plan
            cpu0 = time.process_time()
            f_cap = cap(x_hat, t, f, p_hat, est.param_std, plan)
            cap_cpu.append(time.process_time() - cpu0)
            if f_cap < f:
                capped.append([t, f, f_cap])
                f = f_cap
        sub = plant.step(x_true, f, dt)
        x_true = sub[-1].copy()
        fine_t.extend(t + dt * (np.arange(1, sub.shape[0] + 1) / sub.shape[0]))
        fine_x.extend(list(sub))
        feeds.append(f)
        u_prev = f
        times.append(t + dt)
        trues.append(x_true.copy())
    trues = np.array(trues)
    ests = np.array(ests)
    true_y = np.array([np.asarray(h_out(x)).reshape(-1) for x in trues])
    est_y = np.array([np.asarray(h_out(x)).reshape(-1) for x in ests])
    fine_x = np.array(fine_x)
    margins = constraint_margins(model, problem, trues)
    fine_margins = constraint_margins(model, problem, fine_x)
    violation = float(max(0.0, max(-np.min(m) for m in fine_margins.values())))
    record = MeasurementRecord(
        time=np.array(times),
        quantities=sampler.quantities,
        values=np.array(meas),
        scheduled=np.array(due),
        dropped=np.array(drop),
        noise_std=sampler.std,
    )
    info = {
        "plant": settings.plant if getattr(plant, "name", "model") == "model" else getattr(plant, "name", "custom"),
        "plant_parameter_scale": dict(settings.plant_parameter_scale),
        "estimator": est_settings.kind,
        "estimate_vmax": est_settings.estimate_vmax,
        "t_step_h": dt,
        "n_horizon": mpc_settings.n_horizon,
        "collocation_deg": mpc_settings.collocation_deg,
        "plant_events": list(getattr(plant, "events", [])),
        **_estimator_status_summary(est),
        "robust_std": mpc_settings.robust_std,
        "capped_feeds": capped,
        "feed_cap_cpu_ms_median": float(np.median(cap_cpu) * 1e3) if cap_cpu else None,
        "limits": {
            "volume": problem.volume_max,
            "glucose": problem.glucose_max,
            "acetate": problem.acetate_max,
            "feed_min": problem.feed_min,
            "feed_max": problem.feed_max,
        },
        "objective_kind": problem.objective,
        "volume_state": model.roles.volume,
        "roles": {k: getattr(model.roles, k) for k in ("volume", "glucose", "biomass", "acetate", "product")},
    }
    if est_settings.estimate_vmax and model.roles.vmax is not None:
        iv_p = model.param_index(model.roles.vmax)
        info["vmax_index"] = iv_p  # column of estimated_params (the figure draws it)
        info["vmax_estimate_final"] = float(np.array(pars)[-1, iv_p])
        info["vmax_plant"] = float(getattr(plant, "params", model.param_values)[iv_p]) if hasattr(plant, "params") else None
        if info["vmax_plant"]:
            info["vmax_est_rel_err"] = abs(info["vmax_estimate_final"] - info["vmax_plant"]) / info["vmax_plant"]
    return ClosedLoopResult(
        time=np.array(times),
        true_states=trues,
        estimates=ests,
        estimated_params=np.array(pars),
        fine_time=np.array(fine_t),
        fine_states=fine_x,
        feed=np.array(feeds),
        measurements=record,
        mpc_records=tuple(mpc.records),
        estimator_times=np.array(est_t),
        objective=objective_value(model, problem, trues[-1]),
        violation=violation,
        state_names=model.state_names,
        quantities=sampler.quantities,
        true_outputs=true_y,
        estimated_outputs=est_y,
        margins=margins,
        info=info,
    )
