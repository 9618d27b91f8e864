"""State (and Vmax) estimation from noisy, sampled, sometimes missing measurements: EKF and do-mpc MHE.

Measurements
    :func:`sample_measurements` draws the measured quantities of the true state at each control
    step: a channel is sampled only at its own period; a scheduled sample may drop out (NaN,
    flagged); noise is additive Gaussian. Measured quantities are volume [L] and concentrations
    (biomass gDW/L, glucose / acetate / product mmol/L).

EKF (:class:`ExtendedKalmanFilter`)
    Continuous-discrete extended Kalman filter written with CasADi: the prediction integrates
    the model with RK4 (``integration_substeps`` per step) and propagates the covariance with the
    exact Jacobian of that discrete map (CasADi AD); the correction uses only the channels that
    carry a finite value at this step (Joseph form). do-mpc 5.1.2 also ships
    ``do_mpc.estimator.EKF``; it is not used because it needs every measurement at every step (no
    partial or missing samples), linearises the output at the prior rather than the predicted
    state, and checks inputs with ``assert``.

MHE (:class:`MovingHorizonEstimator`)
    do-mpc's MHE on a model built here: process noise on every state, measurement noise on each
    channel, the feed as a noise-free measured input, one 0/1 time-varying weight per channel and
    step (so missing samples carry no weight), and a time-varying "active" flag that freezes the
    dynamics on the padding steps before the first sample. do-mpc pairs the k-th measurement of
    the window with the state at the end of the k-th interval; the estimate is the newest node.
    The process-noise standard deviation of each state is ``process_rel_std * s +
    process_abs_std`` per sqrt(h) and the arrival cost's ``mhe_arrival_rel_std * s`` around the
    prior, with ``s`` the state's magnitude (``x_scale``, else ``|x0|``). When Vmax is estimated,
    the arrival cost is instead the EKF's: the estimate and inverse covariance (states and Vmax
    jointly, with their correlations) of an EKF run on the samples that have left the window, so
    what the early samples told about Vmax is kept and later samples (e.g. biomass) still correct
    it; with a separate Vmax prior the estimate drifts once the window holds only glucose-limited
    samples. Each solve starts from the previous solution shifted one interval (node k at the new
    window's t_k; the new last interval simulated under the latest feed); without Vmax the
    arrival prior is the previous solution at the new window's start. do-mpc's ``make_step``
    takes that prior from node 1 of the initial guess (right only for an unshifted guess), so the
    solve is called here with the parameters ``make_step`` would set.

Both may estimate the glucose uptake Vmax (``EstimatorSettings.estimate_vmax``) as a constant
parameter, kept inside ``ControlModel.param_bounds`` (for the surrogate fed-batch: the range in
which the glucose uptake stays in the surrogate's domain): the EKF projects its estimate onto the
range, the MHE has it as bounds of the NLP. Both clip amounts at zero. Both report the standard
deviation of that estimate (``param_std``: the EKF's from its covariance, the MHE's from an EKF run on
the same samples), which the closed loop's feed cap (:class:`mpc_bio.control.closed_loop.RobustFeedCap`) uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.control.model import ControlModel
from mpc_bio.control.settings import ControlError, EstimatorSettings, MeasurementSettings
from mpc_bio.interrupts import check_interrupt
from mpc_bio.ipopt_options import ipopt_options

__all__ = [
    "MeasurementRecord",
    "measurement_function",
    "sample_measurements",
    "ExtendedKalmanFilter",
    "MovingHorizonEstimator",
    "build_estimator",
]


def _measurement_exprs(model: ControlModel, quantities, x):
    out = []
    vol = x[model.index("volume")]
    for q in quantities:
        if q == "volume":
            out.append(vol)
        else:
            i = model.index(q)
            if i is None:
                raise ControlError(f"Measurement channel {q!r} needs ReactorRoles.{q} to name a state of the model.")
            out.append(x[i] / vol)
    return ca.vertcat(*out)


def measurement_function(model: ControlModel, quantities) -> ca.Function:
    """``h(x) -> y``: volume [L] and concentrations (n / V) of the measured quantities."""
    x = ca.SX.sym("x", model.n_x)
    return ca.Function("h", [x], [_measurement_exprs(model, quantities, x)])


@dataclass(frozen=True, eq=False)
class MeasurementRecord:
    """Measurements taken at the control steps.

    Attributes
    ----------
    time : ndarray, shape (n,)
        Times [h].
    quantities : tuple of str
        Channel names (columns).
    values : ndarray, shape (n, m)
        Measured values; NaN where nothing was measured (not scheduled or dropped out).
    scheduled : ndarray of bool, shape (n, m)
        Whether a sample was due.
    dropped : ndarray of bool, shape (n, m)
        Whether a due sample was lost (flagged dropouts).
    noise_std : ndarray, shape (m,)
        Noise standard deviation per channel (channel units).
    """

    time: np.ndarray
    quantities: tuple[str, ...]
    values: np.ndarray
    scheduled: np.ndarray
    dropped: np.ndarray
    noise_std: np.ndarray


class MeasurementSampler:
    """Draws measurements step by step (seeded); see :func:`sample_measurements`."""

    def __init__(self, model: ControlModel, settings: MeasurementSettings, dt: float):
        self.settings = settings
        self.quantities = tuple(c.quantity for c in settings.channels)
        self.h = measurement_function(model, self.quantities)
        self.every = np.array([max(1, int(round(c.period / dt))) for c in settings.channels])
        self.std = np.array([c.noise_std for c in settings.channels])
        self.dropout = np.array([c.dropout for c in settings.channels])
        self.rng = np.random.default_rng(settings.seed)

    def sample(self, k: int, x_true) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.asarray(self.h(np.asarray(x_true, dtype=float))).reshape(-1)
        noise = self.rng.normal(0.0, self.std)
        lost = self.rng.random(self.std.size) < self.dropout
        due = (k % self.every) == 0
        dropped = due & lost
        vals = np.where(due & ~lost, y + noise, np.nan)
        return vals, due, dropped


def sample_measurements(model: ControlModel, settings: MeasurementSettings, time, states, dt: float) -> MeasurementRecord:
    """Sample noisy measurements of a state trajectory given at the control steps ``time`` (step ``dt`` h)."""
    s = MeasurementSampler(model, settings, dt)
    rows = [s.sample(k, x) for k, x in enumerate(np.atleast_2d(states))]
    return MeasurementRecord(
        time=np.asarray(time, dtype=float),
        quantities=s.quantities,
        values=np.array([r[0] for r in rows]),
        scheduled=np.array([r[1] for r in rows]),
        dropped=np.array([r[2] for r in rows]),
        noise_std=s.std,
    )


def _aug_param(model: ControlModel, settings: EstimatorSettings) -> int | None:
    if not settings.estimate_vmax:
        return None
    if model.roles.vmax is None:
        raise ControlError(
            f"estimate_vmax=True needs ReactorRoles.vmax to name a parameter of the model; parameters are {list(model.param_names)}."
        )
    return model.param_index(model.roles.vmax)


class ExtendedKalmanFilter:
    """Continuous-discrete EKF with CasADi Jacobians, partial and missing measurements.

    Parameters
    ----------
    model : ControlModel
    quantities : sequence of str
        Measured channels (as in :class:`MeasurementChannel`).
    noise_std : array_like
        Measurement noise standard deviation per channel.
    dt : float
        Step between corrections [h].
    settings : EstimatorSettings
    x0 : array_like
        Initial state estimate.
    x_scale : array_like, optional
        Unused by the EKF (its process noise scales with the current estimate); accepted so both
        estimators share one constructor signature.
    """

    def __init__(self, model: ControlModel, quantities, noise_std, dt: float, settings: EstimatorSettings, x0, x_scale=None):
        self.model = model
        self.settings = settings
        self.dt = float(dt)
        self.quantities = tuple(quantities)
        self.R = np.diag(np.asarray(noise_std, dtype=float) ** 2)
        self.ip = _aug_param(model, settings)
        nx = model.n_x
        self.nz = nx + (1 if self.ip is not None else 0)
        sym = ca.MX if model.symvar == "MX" else ca.SX
        z = sym.sym("z", self.nz)
        u = sym.sym("u")
        p = sym.sym("p", model.n_p)
        x = z[:nx]
        p_use = p
        if self.ip is not None:
            p_use = ca.vertcat(*[z[nx] if i == self.ip else p[i] for i in range(model.n_p)])
        if settings.ekf_integrator == "rk4":
            h = self.dt / settings.integration_substeps
            xk = x
            for _ in range(settings.integration_substeps):
                k1 = model.rhs(xk, u, p_use)
                k2 = model.rhs(xk + h / 2 * k1, u, p_use)
                k3 = model.rhs(xk + h / 2 * k2, u, p_use)
                k4 = model.rhs(xk + h * k3, u, p_use)
                xk = xk + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            z_next = ca.vertcat(xk, z[nx:])
        else:
            # CVODES (BDF, adaptive): the fed-batch is stiff near glucose depletion (time constant
            # Km / (q X / V) can be seconds), where fixed-step RK4 goes unstable. The Jacobian of the
            # step comes from CVODES forward sensitivities through CasADi's AD.
            ode = ca.Function("ekf_ode", [z, u, p], [ca.vertcat(model.rhs(x, u, p_use), sym.zeros(self.nz - nx))])
            zz = ca.MX.sym("zz", self.nz)
            uu = ca.MX.sym("uu")
            pp = ca.MX.sym("pp", model.n_p)
            integ = ca.integrator(
                "ekf_step",
                "cvodes",
                {"x": zz, "p": ca.vertcat(uu, pp), "ode": ode(zz, uu, pp)},
                0.0,
                self.dt,
                {"reltol": 1e-8, "abstol": 1e-10, "max_num_steps": 20000},
            )
            zf = integ(x0=zz, p=ca.vertcat(uu, pp))["xf"]
            z, u, p, z_next = zz, uu, pp, zf
        self._f = ca.Function("ekf_f", [z, u, p], [z_next, ca.jacobian(z_next, z)])
        zs = ca.SX.sym("z", self.nz)
        y = _measurement_exprs(model, self.quantities, zs[:nx])
        self._h = ca.Function("ekf_h", [zs], [y, ca.jacobian(y, zs)])
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        zhat = x0.copy()
        p0 = (settings.initial_rel_std * np.maximum(np.abs(x0), settings.process_abs_std)) ** 2
        if self.ip is not None:
            vmax0 = model.param_values[self.ip] * (1.0 + settings.vmax_initial_error)
            zhat = np.r_[zhat, vmax0]
            p0 = np.r_[p0, (settings.vmax_rel_std * vmax0) ** 2]
        self.z = zhat
        self.P = np.diag(p0)
        self.used = []  # per correction: boolean mask of channels used

    @property
    def x(self) -> np.ndarray:
        """Current state estimate."""
        return self.z[: self.model.n_x].copy()

    @property
    def params(self) -> np.ndarray:
        """Model parameters with the current Vmax estimate."""
        p = self.model.param_values.copy()
        if self.ip is not None:
            p[self.ip] = self.z[-1]
        return p

    @property
    def param_std(self) -> float:
        """Standard deviation of the estimated parameter (the glucose Vmax) [its unit]; 0 when none is estimated."""
        return float(np.sqrt(max(self.P[-1, -1], 0.0))) if self.ip is not None else 0.0

    def predict(self, u: float) -> None:
        """Propagate the estimate and covariance over one step with feed ``u`` [L/h]."""
        zn, Fk = self._f(self.z, u, self.model.param_values)
        zn = np.asarray(zn).reshape(-1)
        Fk = np.asarray(Fk)
        nx = self.model.n_x
        x = np.abs(zn[:nx])
        q = (self.settings.process_rel_std * x + self.settings.process_abs_std) ** 2 * self.dt
        if self.ip is not None:
            q = np.r_[q, (1e-3 * abs(zn[-1])) ** 2 * self.dt]
        self.P = Fk @ self.P @ Fk.T + np.diag(q)
        self.P = 0.5 * (self.P + self.P.T)
        self.z = self._clip(zn)

    def correct(self, y) -> np.ndarray:
        """Correct with the measurement vector ``y`` (NaN entries are skipped); returns the state estimate."""
        y = np.asarray(y, dtype=float).reshape(-1)
        mask = np.isfinite(y)
        self.used.append(mask.copy())
        if mask.any():
            yh, H = self._h(self.z)
            yh = np.asarray(yh).reshape(-1)[mask]
            H = np.asarray(H)[mask]
            R = self.R[np.ix_(mask, mask)]
            S = H @ self.P @ H.T + R
            K = np.linalg.solve(S, H @ self.P).T
            self.z = self._clip(self.z + K @ (y[mask] - yh))
            I_KH = np.eye(self.nz) - K @ H
            self.P = I_KH @ self.P @ I_KH.T + K @ R @ K.T
        return self.x

    def update(self, y, u_prev: float | None) -> np.ndarray:
        """Predict with the previous feed (if any), then correct with ``y``; returns the estimate."""
        if u_prev is not None:
            self.predict(u_prev)
        return self.correct(y)

    def _clip(self, z):
        z = np.asarray(z, dtype=float).copy()
        z[: self.model.n_x] = np.maximum(z[: self.model.n_x], 0.0)
        iv = self.model.index("volume")
        z[iv] = max(z[iv], 1e-6)
        if self.ip is not None:  # projection onto the parameter's validity range
            lo, hi = self.model.param_bounds[self.ip]
            z[-1] = min(max(z[-1], lo, 1e-6), hi)
        return z


class MovingHorizonEstimator:
    """do-mpc MHE with per-sample measurement weights (missing samples weigh nothing).

    Same constructor arguments and :meth:`update` interface as :class:`ExtendedKalmanFilter`.
    Every solve's IPOPT status is kept in :attr:`statuses`; after a failed solve the estimate is
    the previous one predicted over the step by the model (CVODES), the parameter estimate is
    kept, and the next solve starts from this step's guess (not from the failed iterate).
    """

    def __init__(self, model: ControlModel, quantities, noise_std, dt: float, settings: EstimatorSettings, x0, x_scale=None):
        from mpc_bio.control.dompc import import_do_mpc, quiet_do_mpc

        do_mpc = import_do_mpc()

        self.model = model
        self.settings = settings
        self.dt = float(dt)
        self.quantities = tuple(quantities)
        self.std = np.asarray(noise_std, dtype=float)
        self.ip = _aug_param(model, settings)
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        scale = np.maximum(np.abs(x0) if x_scale is None else np.asarray(x_scale, dtype=float), settings.process_abs_std)
        N = settings.mhe_horizon
        self.N = N
        symvar = "MX" if model.symvar == "MX" else "SX"
        m = do_mpc.model.Model("continuous", symvar)
        xs = [m.set_variable("_x", n) for n in model.state_names]
        u = m.set_variable("_u", model.input_name)
        ps = [m.set_variable("_p", n) for n in model.param_names]
        active = m.set_variable("_tvp", "active")
        masks = [m.set_variable("_tvp", f"w_{q}") for q in self.quantities]
        # with Vmax estimated: the arrival cost's weight matrix (inverse covariance of the states and
        # Vmax at the window's start, upper triangle), set before each solve
        nz = model.n_x + 1
        w_syms = (
            {(i, j): m.set_variable("_p", f"arrival_w_{i}_{j}") for i in range(nz) for j in range(i, nz)} if self.ip is not None else {}
        )
        x = ca.vertcat(*xs)
        p = ca.vertcat(*ps) if ps else (ca.SX(0, 1) if symvar == "SX" else ca.MX(0, 1))
        dx = active * model.rhs(x, u, p)
        for i, n in enumerate(model.state_names):
            m.set_rhs(n, dx[i], process_noise=True)
        y = _measurement_exprs(model, self.quantities, x)
        for j, q in enumerate(self.quantities):
            m.set_meas(f"y_{q}", y[j], meas_noise=True)
        m.set_meas("y_feed", u, meas_noise=False)
        m.setup()
        self._m = m
        p_est = [model.roles.vmax] if self.ip is not None else []
        mhe = do_mpc.estimator.MHE(m, p_est)
        mhe.settings.n_horizon = N
        mhe.settings.t_step = self.dt
        mhe.settings.collocation_deg = 2
        mhe.settings.nl_cons_check_colloc_points = False
        # bounds kept exact, as in the MPC (mpc_bio.control.mpc.ipopt_options): the uptakes have a kink at zero
        mhe.settings.nlpsol_opts = ipopt_options(200, **{"ipopt.bound_relax_factor": 0.0})
        mhe.settings.store_solver_stats = []
        q_std = settings.process_rel_std * scale + settings.process_abs_std  # state units per sqrt(h)
        P_w = np.diag(1.0 / (q_std**2 / self.dt))
        P_v = ca.diag(ca.vertcat(*[masks[j] / self.std[j] ** 2 for j in range(len(self.quantities))]))
        P_x = np.diag(1.0 / (settings.mhe_arrival_rel_std * scale) ** 2)
        self._arrival_ekf = None
        if self.ip is None:
            mhe.set_default_objective(P_x, P_v, None, P_w)
        else:
            vmax0 = model.param_values[self.ip] * (1.0 + settings.vmax_initial_error)
            # the arrival cost: the EKF's estimate and covariance of the states and Vmax at the
            # window's start (an EKF run on the samples that have left the window), with their
            # correlations: later samples (e.g. biomass) still correct the Vmax the window's early
            # samples told about; a separate Vmax prior forgets it once the window holds only
            # glucose-limited samples
            self._arrival_ekf = ExtendedKalmanFilter(model, quantities, noise_std, dt, settings, x0)
            self._spread_ekf = ExtendedKalmanFilter(model, quantities, noise_std, dt, settings, x0)  # param_std
            W = ca.vertcat(*[ca.horzcat(*[w_syms[min(i, j), max(i, j)] for j in range(nz)]) for i in range(nz)])
            v, w = mhe._v.cat, mhe._w.cat
            stage = v.T @ P_v @ v + w.T @ P_w @ w
            dz = ca.vertcat(mhe._x.cat - mhe._x_prev.cat, mhe._p_est.cat - mhe._p_est_prev.cat)
            mhe.set_objective(stage, dz.T @ W @ dz)
        for name in model.state_names:  # every state is an amount (L, mmol, gDW): never negative
            mhe.bounds["lower", "_x", name] = 0.0
        mhe.bounds["lower", "_x", model.roles.volume] = 1e-6
        if self.ip is not None:
            lo, hi = model.param_bounds[self.ip]
            mhe.bounds["lower", "_p_est", model.roles.vmax] = max(float(lo), 1e-6)
            if np.isfinite(hi):
                mhe.bounds["upper", "_p_est", model.roles.vmax] = float(hi)
        p_tmpl = mhe.get_p_template()
        fixed = [n for n in model.param_names if n not in p_est]
        for n in fixed:
            p_tmpl[n] = model.param_values[model.param_index(n)]
        self._p_tmpl = p_tmpl
        mhe.set_p_fun(lambda t: p_tmpl)
        self._ekf_done = 0  # samples the arrival-cost EKF has processed
        self._spread_done = 0  # samples the EKF of param_std has processed
        self._ys: list[np.ndarray] = []
        self._us: list[float] = []
        self._tvp_tmpl = mhe.get_tvp_template()
        self._y_tmpl = mhe.get_y_template()
        mhe.set_tvp_fun(self._tvp_fun)
        mhe.set_y_fun(self._y_fun)
        with quiet_do_mpc():
            mhe.setup()
        mhe.x0 = x0
        if self.ip is not None:
            mhe.p_est0 = np.array([vmax0])
        mhe.set_initial_guess()
        self.mhe = mhe
        self._x = x0.copy()
        self._p = model.param_values.copy()
        if self.ip is not None:
            self._p[self.ip] = vmax0
        self.used = []
        self.statuses: list[str] = []  # IPOPT return status of every MHE solve
        self.successes: list[bool] = []
        self._predict = None
        self._guess_integ = None
        self._t = 0.0

    def _window(self):
        n = len(self._ys)
        start = max(0, n - self.N)
        return self.N - (n - start), start

    # do-mpc's MHE pairs measurement k of the window with the node at the END of interval k, and
    # interval k is driven by input k: so measurement j (global index g) sits at node k + 1 and the
    # interval before it carries the feed applied between samples g - 1 and g.
    def _tvp_fun(self, t):
        pad, start = self._window()
        for k in range(self.N):
            g = start + k - pad
            real = k >= pad
            self._tvp_tmpl["_tvp", k, "active"] = 1.0 if (real and g >= 1) else 0.0
            for c, q in enumerate(self.quantities):
                w = 1.0 if real and np.isfinite(self._ys[g][c]) else 0.0
                self._tvp_tmpl["_tvp", k, f"w_{q}"] = w
        return self._tvp_tmpl

    def _y_fun(self, t):
        pad, start = self._window()
        for k in range(self.N):
            g = start + k - pad
            if k >= pad:
                yv = np.where(np.isfinite(self._ys[g]), self._ys[g], 0.0)
                uv = self._us[g]
            else:
                yv = np.zeros(len(self.quantities))
                uv = self._us[start] if self._us else 0.0
            self._y_tmpl["y_meas", k] = np.r_[yv, uv]
        return self._y_tmpl

    @property
    def x(self) -> np.ndarray:
        return self._x.copy()

    @property
    def params(self) -> np.ndarray:
        return self._p.copy()

    @property
    def param_std(self) -> float:
        """Standard deviation of the estimated parameter (the glucose Vmax) [its unit]; 0 when none is estimated.

        The MHE's own uncertainty would need the inverse reduced Hessian of its NLP; this is the spread of an
        EKF (the arrival cost's filter) run on every sample so far, its Vmax variance.
        """
        if self.ip is None:
            return 0.0
        ekf = self._spread_ekf
        while self._spread_done < len(self._ys):
            g = self._spread_done
            ekf.update(self._ys[g], self._us[g] if g >= 1 else None)
            self._spread_done += 1
        return ekf.param_std

    def update(self, y, u_prev: float | None) -> np.ndarray:
        """Add the sample ``y`` (NaN = missing) taken after applying ``u_prev``, solve, return the estimate."""
        y = np.asarray(y, dtype=float).reshape(-1)
        self.used.append(np.isfinite(y))
        self._ys.append(y)
        self._us.append(float(u_prev) if u_prev is not None else 0.0)  # feed applied before this sample
        xs, ok = self._solve_window(len(self._ys) > 1)
        iv = self.model.index("volume")
        if not ok:
            # fallback: the previous estimate predicted over the step with the model (CVODES)
            if self._predict is None:
                from mpc_bio.control.model import make_integrator

                self._predict = make_integrator(self.model, self.dt)
            try:
                xs = np.asarray(self._predict(x0=self._x, p=np.r_[self._us[-1], self._p])["xf"]).reshape(-1)
            except RuntimeError:
                check_interrupt()  # CVODES failed because of Ctrl-C/SIGTERM: stop, not a fallback
                xs = self._x.copy()
        xs = np.maximum(xs, 0.0)
        xs[iv] = max(xs[iv], 1e-6)
        self._x = xs
        if self.ip is not None and ok:
            pe = float(np.asarray(self.mhe.opt_x_num["_p_est"] * self.mhe.opt_x_scaling["_p_est"]).reshape(-1)[0])
            lo, hi = self.model.param_bounds[self.ip]
            self._p[self.ip] = min(max(pe, lo), hi)
        return self.x

    def _solve_window(self, shift: bool) -> tuple[np.ndarray, bool]:
        """One MHE solve on the current window; returns (newest node, success).

        The guess is the last solution (or, after a failure, the last guess) shifted one interval,
        its new last interval simulated under the latest feed; the arrival prior is that solution
        at the new window's start, or, with Vmax estimated, the EKF's (:meth:`_arrival_prior`).
        After a failed solve the guess is kept (not the failed iterate) and the fallback estimate
        is left to the caller.
        """
        mhe = self.mhe
        sx = np.asarray(mhe.opt_x_scaling["_x", 0, -1]).reshape(-1)
        if shift:
            self._shift_guess()
        guess = ca.DM(mhe.opt_x_num.cat)
        # the arrival prior: the state at the window's start (node 0 of the shifted guess)
        x_prev = np.asarray(mhe.opt_x_num["_x", 0, -1]).reshape(-1) * sx
        t0 = self._t
        if self.ip is not None:
            x_prev, p_prev = self._arrival_prior()
            mhe.opt_p_num["_p_est_prev"] = np.array([p_prev])
        mhe.opt_p_num["_x_prev"] = x_prev
        mhe.opt_p_num["_p_set"] = mhe.p_fun(t0)
        mhe.opt_p_num["_tvp"] = mhe.tvp_fun(t0)["_tvp"]
        mhe.opt_p_num["_y_meas"] = mhe.y_fun(t0)["y_meas"]
        mhe.solve()
        check_interrupt()  # IPOPT turned Ctrl-C/SIGTERM into a failed status: stop, no fallback
        self._t += self.dt
        stats = mhe.solver_stats
        self.statuses.append(str(stats.get("return_status")))
        xs = np.asarray(mhe.opt_x_num["_x", -1, -1]).reshape(-1) * sx
        ok = bool(stats.get("success", False)) and bool(np.all(np.isfinite(xs)))
        self.successes.append(ok)
        if not ok:  # the next solve starts from this step's guess, not from the failed iterate
            mhe.opt_x_num.master = guess
        return xs, ok

    def _arrival_prior(self) -> tuple[np.ndarray, float]:
        """The arrival cost's prior (states, Vmax) at the window's start; sets its weight matrix.

        Node 0 of the window is the state at sample ``n - N - 1`` (``n`` samples so far); the EKF
        has processed every sample up to it and none of the window's. The weight is the inverse of
        its covariance (symmetrised, with a floor of ``process_abs_std**2`` on the variances).
        """
        ekf = self._arrival_ekf
        while self._ekf_done < len(self._ys) - self.N:
            g = self._ekf_done
            ekf.update(self._ys[g], self._us[g] if g >= 1 else None)
            self._ekf_done += 1
        P = 0.5 * (ekf.P + ekf.P.T) + np.eye(ekf.nz) * self.settings.process_abs_std**2
        W = np.linalg.inv(P)
        W = 0.5 * (W + W.T)
        for i in range(ekf.nz):
            for j in range(i, ekf.nz):
                self._p_tmpl[f"arrival_w_{i}_{j}"] = float(W[i, j])
        return ekf.x, float(ekf.z[-1])

    def _shift_guess(self) -> None:
        """Shift the stored window one interval (node k + 1 -> k) and simulate the new last interval."""
        mhe = self.mhe
        xs = mhe.opt_x_num
        for key in ("_x", "_z", "_u", "_w", "_v"):
            n = len(xs[key])
            if n < 2:
                continue
            old = [xs[key, k] for k in range(n)]
            old = [[ca.DM(v) for v in o] if isinstance(o, list) else ca.DM(o) for o in old]
            for k in range(n - 1):
                if isinstance(old[k + 1], list):
                    for c, v in enumerate(old[k + 1]):
                        xs[key, k, c] = v
                else:
                    xs[key, k] = old[k + 1]
        # the new last interval: from the newest node under the feed applied since the last sample
        sx = np.asarray(mhe.opt_x_scaling["_x", 0, -1]).reshape(-1)
        su = float(np.asarray(mhe.opt_x_scaling["_u", 0]).reshape(-1)[0])
        N = self.N
        x = np.asarray(xs["_x", N - 1, -1]).reshape(-1) * sx
        u = self._us[-1]
        try:
            traj = np.maximum(np.asarray(self._interval_integrator()(x0=x, p=np.r_[u, self._p])["xf"]).T, 0.0)
        except RuntimeError:  # a far-off estimate: hold the state (unless it was Ctrl-C/SIGTERM)
            check_interrupt()
            traj = np.repeat(x[None, :], len(xs["_x", N]) - 1, axis=0)
        for c in range(traj.shape[0]):
            xs["_x", N, c] = traj[c] / sx
        xs["_x", N, -1] = traj[-1] / sx
        xs["_u", N - 1] = u / su
        for key in ("_w", "_v"):
            if key in xs.keys():
                xs[key, N - 1] = 0.0

    def _interval_integrator(self):
        """CVODES over one interval, output at the stored points of an interval (Radau times, end)."""
        if self._guess_integ is None:
            mhe, model = self.mhe, self.model
            n_pts = len(mhe.opt_x_num["_x", 1]) - 1  # stored points of an interval before its end node
            tau = [0.0, *[float(v) for v in ca.collocation_points(mhe.settings.collocation_deg, "radau")]]
            ni, deg = mhe.settings.collocation_ni, mhe.settings.collocation_deg
            grid = [tau[j] / ni for j in range(1, deg + 1)]  # do-mpc's order (as FeedMPC._interval_times)
            for i in range(1, ni):
                grid.extend((i + tau[j]) / ni for j in range(deg + 1))
            grid.append(1.0)
            if len(grid) != n_pts:
                raise ControlError(f"MHE guess: {n_pts} stored points per interval, expected {len(grid)} (collocation settings).")
            sym = ca.MX if model.symvar == "MX" else ca.SX
            x, u, p = sym.sym("x", model.n_x), sym.sym("u", 1), sym.sym("p", model.n_p)
            dae = {"x": x, "p": ca.vertcat(u, p), "ode": model.rhs(x, u, p)}
            opts = {"reltol": 1e-6, "abstol": 1e-9, "max_num_steps": 20000}
            self._guess_integ = ca.integrator("mhe_guess", "cvodes", dae, 0.0, [g * self.dt for g in grid], opts)
        return self._guess_integ


def build_estimator(model: ControlModel, settings: EstimatorSettings, measurements: MeasurementSettings, dt: float, x0, x_scale=None):
    """The estimator named by ``settings.kind`` (``"ekf"`` or ``"mhe"``) for the given channels."""
    q = tuple(c.quantity for c in measurements.channels)
    std = np.array([c.noise_std for c in measurements.channels])
    if settings.kind == "ekf":
        return ExtendedKalmanFilter(model, q, std, dt, settings, x0, x_scale)
    if settings.kind == "mhe":
        return MovingHorizonEstimator(model, q, std, dt, settings, x0, x_scale)
    raise ControlError(f"build_estimator needs kind 'ekf' or 'mhe'. Got {settings.kind!r} instead.")
