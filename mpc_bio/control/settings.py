"""Frozen, validated settings of the control stage (MPC, estimation, offline optimisation, closed loop).

Units used throughout the control stage: time in h, volume in L, feed rate in L/h, amounts of
extracellular species in mmol, biomass in gDW, concentrations in mmol/L (species) and gDW/L
(biomass). Every field's docstring states its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = [
    "ControlError",
    "ReactorRoles",
    "BatchProblem",
    "MPCSettings",
    "MeasurementChannel",
    "MeasurementSettings",
    "EstimatorSettings",
    "OfflineSettings",
    "BaselineSettings",
    "ClosedLoopSettings",
    "settings_from_dict",
]

OBJECTIVES = ("biomass", "product", "productivity")
MEASURABLE = ("volume", "biomass", "glucose", "acetate", "product")


class ControlError(MpcBioError):
    """A control setting or model is inconsistent with what the control stage needs."""


def _positive(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
        kind = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ControlError(f"The '{name}' parameter of {owner} must be {kind}. Got {value!r} instead.")


def _choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ControlError(f"The '{name}' parameter of {owner} must be one of {choices}. Got {value!r} instead.")


@dataclass(frozen=True)
class ReactorRoles:
    """Which state, input and parameter of a process model play which role in the control problem.

    Attributes
    ----------
    volume : str
        Name of the reactor volume state [L].
    glucose : str
        Name of the glucose amount state [mmol].
    biomass : str
        Name of the biomass amount state [gDW].
    acetate : str or None
        Name of the acetate amount state [mmol]; None when the model has none.
    product : str or None
        Name of the product amount state [mmol] used by the ``"product"`` objective.
    feed : str
        Name of the feed-rate input [L/h].
    vmax : str or None
        Name of the model parameter holding the glucose uptake Vmax [mmol/gDW/h] (the parameter an
        estimator may estimate and a mismatched plant may perturb); None when it is not a parameter.
    """

    volume: str = "V"
    glucose: str = "n_glc"
    biomass: str = "n_X"
    acetate: str | None = "n_ac"
    product: str | None = None
    feed: str = "F"
    vmax: str | None = "vmax_glc"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("acetate", "product", "vmax") and value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ControlError(f"The '{f.name}' parameter of ReactorRoles must be a non-empty state/input name. Got {value!r} instead.")


@dataclass(frozen=True)
class BatchProblem:
    """The fed-batch optimal-control problem shared by the MPC, the offline optimiser and the baselines.

    Attributes
    ----------
    batch_time : float
        Length of the batch [h]; the objective is evaluated at this time.
    objective : str
        ``"biomass"`` (maximise biomass amount at the end, gDW), ``"product"`` (maximise the
        product amount at the end, mmol; needs ``ReactorRoles.product``) or ``"productivity"``
        (maximise final biomass concentration per batch time, gDW/L/h).
    feed_min, feed_max : float
        Bounds on the feed rate [L/h].
    volume_max : float
        Maximum reactor volume [L] (hard in the offline problem and the MPC).
    glucose_max : float
        Upper limit of the glucose concentration [mmol/L] (soft in the MPC, hard offline).
    acetate_max : float
        Upper limit of the acetate concentration [mmol/L] (soft in the MPC, hard offline); ignored
        when the model has no acetate state.
    constraint_tolerance : float
        Relative tolerance on constraint violation used when checking trajectories
        (fraction of the limit, e.g. 0.02 = 2 %).
    """

    batch_time: float = 10.0
    objective: str = "biomass"
    feed_min: float = 0.0
    feed_max: float = 0.2
    volume_max: float = 2.0
    glucose_max: float = 50.0
    acetate_max: float = 30.0
    constraint_tolerance: float = 0.02

    def __post_init__(self) -> None:
        owner = "BatchProblem"
        _positive(owner, "batch_time", self.batch_time)
        _choice(owner, "objective", self.objective, OBJECTIVES)
        _positive(owner, "feed_min", self.feed_min, allow_zero=True)
        _positive(owner, "feed_max", self.feed_max)
        if self.feed_max <= self.feed_min:
            raise ControlError(
                f"The 'feed_max' parameter of BatchProblem must exceed feed_min={self.feed_min}. Got {self.feed_max!r} instead."
            )
        _positive(owner, "volume_max", self.volume_max)
        _positive(owner, "glucose_max", self.glucose_max)
        _positive(owner, "acetate_max", self.acetate_max)
        _positive(owner, "constraint_tolerance", self.constraint_tolerance, allow_zero=True)


@dataclass(frozen=True)
class MPCSettings:
    """Settings of the economic feed-rate MPC (do-mpc, orthogonal collocation).

    The prediction horizon spans ``n_horizon * t_step`` h; after the end of the batch the
    predicted dynamics are frozen (a time-varying flag multiplies the right-hand side), so the
    Mayer term always scores the state at the end of the batch when the horizon reaches it.

    Attributes
    ----------
    t_step : float
        Sampling time of the controller [h].
    n_horizon : int
        Number of prediction intervals.
    collocation_deg : int
        Degree of the Radau collocation polynomial per interval (1-5).
    collocation_ni : int
        Number of collocation finite elements per interval.
    move_penalty : float
        Weight on squared feed moves, in objective units per (L/h)^2 (the objective is scaled
        by ``objective_scale``).
    objective_scale : float
        The economic objective is divided by this number [objective unit], so it is O(1).
    soft_penalty : float
        Penalty on the slack of the soft constraints, per unit of violation (L or mmol/L), in
        scaled objective units.
    backoff : float
        Fraction of the glucose and acetate limits the MPC keeps free as a margin for estimation
        error and mismatch: it plans against ``(1 - backoff) * limit`` [-].
    max_iter : int
        IPOPT iteration limit per warm-started step.
    cold_max_iter : int or None
        IPOPT iteration limit of a cold solve (the first after a reset or a failure, every
        solve with ``warm_start = false``); default ``5 * max_iter``. From a crude guess (a
        constant feed) the first solve needs several hundred iterations; from the offline
        optimum about a hundred.
    tol : float
        IPOPT convergence tolerance.
    safe_feed : float
        Feed rate [L/h] applied after a failed solve when no previous plan exists.
    symvar : str
        ``"SX"`` or ``"MX"``: the symbolic type of the control model (SX is faster; MX is needed
        for l4casadi externals).
    linear_solver : str
        IPOPT linear solver (``"mumps"`` ships with CasADi).
    warm_start : bool
        Start IPOPT from the previous solution shifted by one interval, with its multipliers
        shifted too, and IPOPT's warm-start options (``warm_start_init_point``, small bound push,
        small initial barrier parameter). Otherwise every solve starts cold (zero multipliers,
        default options) from the shifted primal solution. The first solve after a reset or a
        failure always starts cold from a guess simulated under the plan.
    backend : str
        ``"do-mpc"``: do-mpc's collocation NLP with the control model's CasADi graph (a distilled
        spline or the network as a native graph). ``"network"``: the surrogate network itself in
        the loop (:mod:`mpc_bio.control.network_mpc`): the same collocation NLP with the network
        evaluated by one batched torch call for all collocation points per evaluation (value,
        exact block-diagonal Jacobian and Hessian), everything else compiled as CasADi SX.
    network_hessian : str
        ``backend = "network"`` only: the network's part of IPOPT's Hessian of the Lagrangian.
        ``"exact"``; ``"convexified"``: per collocation point, the network's curvature (its
        second derivatives weighted by their multipliers, a k x k matrix) with its negative
        eigenvalues set to zero, so IPOPT needs no large regularisation where the network bends
        sharply (the KKT conditions, hence the solutions, are unchanged); ``"auto"``:
        convexified for networks with kink features, exact otherwise.
    torch_threads : int
        ``backend = "network"`` only: torch intra-op threads inside the solver loop (restored
        after every step).
    device : str
        ``backend = "network"`` only: torch device, ``"auto"`` (cuda when available, else cpu),
        ``"cpu"`` or ``"cuda"``.
    """

    t_step: float = 0.5
    n_horizon: int = 20
    collocation_deg: int = 2
    collocation_ni: int = 1
    move_penalty: float = 1.0
    objective_scale: float = 1.0
    soft_penalty: float = 1e3
    backoff: float = 0.05
    max_iter: int = 200
    cold_max_iter: int | None = None
    tol: float = 1e-6
    safe_feed: float = 0.0
    symvar: str = "SX"
    linear_solver: str = "mumps"
    warm_start: bool = True
    backend: str = "do-mpc"
    network_hessian: str = "auto"
    torch_threads: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        owner = "MPCSettings"
        _positive(owner, "t_step", self.t_step)
        if not isinstance(self.n_horizon, int) or self.n_horizon < 1:
            raise ControlError(f"The 'n_horizon' parameter of MPCSettings must be an int >= 1. Got {self.n_horizon!r} instead.")
        if not isinstance(self.collocation_deg, int) or not 1 <= self.collocation_deg <= 5:
            raise ControlError(
                f"The 'collocation_deg' parameter of MPCSettings must be an int in 1..5. Got {self.collocation_deg!r} instead."
            )
        if not isinstance(self.collocation_ni, int) or self.collocation_ni < 1:
            raise ControlError(f"The 'collocation_ni' parameter of MPCSettings must be an int >= 1. Got {self.collocation_ni!r} instead.")
        _positive(owner, "move_penalty", self.move_penalty, allow_zero=True)
        _positive(owner, "objective_scale", self.objective_scale)
        _positive(owner, "soft_penalty", self.soft_penalty)
        if not 0.0 <= self.backoff < 1.0:
            raise ControlError(f"The 'backoff' parameter of MPCSettings must be in [0, 1). Got {self.backoff!r} instead.")
        if not isinstance(self.max_iter, int) or self.max_iter < 0:
            raise ControlError(f"The 'max_iter' parameter of MPCSettings must be an int >= 0. Got {self.max_iter!r} instead.")
        if self.cold_max_iter is not None and (not isinstance(self.cold_max_iter, int) or self.cold_max_iter < 0):
            raise ControlError(
                f"The 'cold_max_iter' parameter of MPCSettings must be an int >= 0 or None. Got {self.cold_max_iter!r} instead."
            )
        _positive(owner, "tol", self.tol)
        _positive(owner, "safe_feed", self.safe_feed, allow_zero=True)
        _choice(owner, "symvar", self.symvar, ("SX", "MX"))
        _choice(owner, "backend", self.backend, ("do-mpc", "network"))
        _choice(owner, "network_hessian", self.network_hessian, ("auto", "exact", "convexified"))
        _choice(owner, "device", self.device, ("auto", "cpu", "cuda"))
        if not isinstance(self.torch_threads, int) or isinstance(self.torch_threads, bool) or self.torch_threads < 1:
            raise ControlError(f"The 'torch_threads' parameter of MPCSettings must be an int >= 1. Got {self.torch_threads!r} instead.")


@dataclass(frozen=True)
class MeasurementChannel:
    """One measured quantity: what, how often, how noisy.

    Attributes
    ----------
    quantity : str
        ``"volume"`` [L], ``"biomass"`` (concentration, gDW/L), ``"glucose"`` (concentration,
        mmol/L), ``"acetate"`` (mmol/L) or ``"product"`` (mmol/L).
    period : float
        Sampling period [h]; rounded to a multiple of the closed-loop step.
    noise_std : float
        Standard deviation of the additive Gaussian noise, in the quantity's unit.
    dropout : float
        Probability (0-1) that a scheduled sample is lost (recorded as NaN and flagged).
    """

    quantity: str
    period: float
    noise_std: float
    dropout: float = 0.0

    def __post_init__(self) -> None:
        owner = "MeasurementChannel"
        _choice(owner, "quantity", self.quantity, MEASURABLE)
        _positive(owner, "period", self.period)
        _positive(owner, "noise_std", self.noise_std)
        if not 0.0 <= self.dropout < 1.0:
            raise ControlError(f"The 'dropout' parameter of MeasurementChannel must be in [0, 1). Got {self.dropout!r} instead.")


def _default_channels() -> tuple[MeasurementChannel, ...]:
    return (
        MeasurementChannel("volume", 0.5, 0.005),
        MeasurementChannel("biomass", 1.0, 0.1),
        MeasurementChannel("glucose", 1.0, 0.5),
    )


@dataclass(frozen=True)
class MeasurementSettings:
    """Noisy, sampled measurements of the plant.

    Attributes
    ----------
    channels : tuple of MeasurementChannel
        The measured quantities, rates and noise levels.
    seed : int
        Seed of the noise and dropout generator.
    """

    channels: tuple[MeasurementChannel, ...] = field(default_factory=_default_channels)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.channels:
            raise ControlError("The 'channels' parameter of MeasurementSettings must list at least one channel. Got () instead.")
        names = [c.quantity for c in self.channels]
        if len(set(names)) != len(names):
            raise ControlError(f"The 'channels' parameter of MeasurementSettings has a repeated quantity. Got {names} instead.")


@dataclass(frozen=True)
class EstimatorSettings:
    """Settings of the state (and parameter) estimator.

    Attributes
    ----------
    kind : str
        ``"ekf"`` (continuous-discrete extended Kalman filter with CasADi Jacobians),
        ``"mhe"`` (do-mpc moving-horizon estimator) or ``"none"`` (the true state is fed to the
        MPC; for reference runs only).
    initial_error : float
        Relative error of the initial estimate: x_hat0 = (1 + initial_error) * x_true0 for every
        state except the volume [-].
    initial_rel_std : float
        Relative standard deviation of the initial estimate (P0 diagonal) [-].
    process_rel_std : float
        Relative process-noise standard deviation per sqrt(h), per state [-].
    process_abs_std : float
        Absolute floor of the process-noise standard deviation per sqrt(h), in state units.
    estimate_vmax : bool
        Estimate the glucose uptake Vmax as an extra (constant) state.
    vmax_rel_std : float
        Prior relative standard deviation of Vmax [-].
    vmax_initial_error : float
        Relative error of the initial Vmax guess [-].
    mhe_horizon : int
        Number of steps in the MHE window.
    mhe_arrival_rel_std : float
        Relative standard deviation of the MHE arrival cost (fixed weight on the deviation of the
        window's first state from the previous estimate) [-].
    ekf_integrator : str
        ``"cvodes"`` (adaptive BDF with sensitivities; robust when glucose runs out) or ``"rk4"``
        (fixed-step, ``integration_substeps`` per step; cheaper, only for non-stiff models).
    integration_substeps : int
        RK4 substeps per step used by the EKF prediction with ``ekf_integrator="rk4"``.
    """

    kind: str = "ekf"
    initial_error: float = 0.2
    initial_rel_std: float = 0.3
    process_rel_std: float = 0.01
    process_abs_std: float = 1e-3
    estimate_vmax: bool = False
    vmax_rel_std: float = 0.3
    vmax_initial_error: float = 0.0
    mhe_horizon: int = 8
    mhe_arrival_rel_std: float = 0.05
    ekf_integrator: str = "cvodes"
    integration_substeps: int = 4

    def __post_init__(self) -> None:
        owner = "EstimatorSettings"
        _choice(owner, "kind", self.kind, ("ekf", "mhe", "none"))
        if not math.isfinite(self.initial_error) or self.initial_error <= -1:
            raise ControlError(f"The 'initial_error' parameter of EstimatorSettings must be > -1. Got {self.initial_error!r} instead.")
        _positive(owner, "initial_rel_std", self.initial_rel_std)
        _positive(owner, "process_rel_std", self.process_rel_std, allow_zero=True)
        _positive(owner, "process_abs_std", self.process_abs_std)
        _positive(owner, "vmax_rel_std", self.vmax_rel_std)
        _positive(owner, "mhe_arrival_rel_std", self.mhe_arrival_rel_std)
        if not math.isfinite(self.vmax_initial_error) or self.vmax_initial_error <= -1:
            raise ControlError(
                f"The 'vmax_initial_error' parameter of EstimatorSettings must be > -1. Got {self.vmax_initial_error!r} instead."
            )
        if not isinstance(self.mhe_horizon, int) or self.mhe_horizon < 2:
            raise ControlError(f"The 'mhe_horizon' parameter of EstimatorSettings must be an int >= 2. Got {self.mhe_horizon!r} instead.")
        _choice(owner, "ekf_integrator", self.ekf_integrator, ("cvodes", "rk4"))
        if not isinstance(self.integration_substeps, int) or self.integration_substeps < 1:
            raise ControlError(
                f"The 'integration_substeps' parameter of EstimatorSettings must be an int >= 1. Got {self.integration_substeps!r} instead."
            )


@dataclass(frozen=True)
class OfflineSettings:
    """Offline (whole-batch) feed-profile optimisation by direct collocation.

    Attributes
    ----------
    n_intervals : int
        Number of piecewise-constant feed intervals over the batch.
    collocation_deg : int
        Radau collocation degree per interval.
    move_penalty : float
        Weight on squared feed moves (same scaling as the MPC), for a smoother profile.
    max_iter : int
        IPOPT iteration limit.
    tol : float
        IPOPT tolerance.
    max_violation : float
        Largest relative violation of the volume, glucose and acetate limits accepted on the fine
        check grid between collocation points [-]; beyond it the violated limits are backed off
        by the violation found and the problem is solved again.
    check_dt : float
        Step of the fine grid on which the optimum is re-simulated (CVODES) and checked [h].
    backoff_rounds : int
        Largest number of re-solves with backed-off limits.
    model : str
        Model the scenario runners optimise with: ``"plant"`` (the full surrogate) or
        ``"control"`` (the controller's model, e.g. the distilled spline: much faster to build
        and solve). The profile is always re-simulated, checked and backed off on the plant
        model, and its objective there is the one reported.
    """

    n_intervals: int = 20
    collocation_deg: int = 3
    move_penalty: float = 0.0
    max_iter: int = 1000
    tol: float = 1e-8
    max_violation: float = 0.005
    check_dt: float = 0.01
    backoff_rounds: int = 5
    model: str = "plant"

    def __post_init__(self) -> None:
        owner = "OfflineSettings"
        if not isinstance(self.n_intervals, int) or self.n_intervals < 1:
            raise ControlError(f"The 'n_intervals' parameter of OfflineSettings must be an int >= 1. Got {self.n_intervals!r} instead.")
        if not isinstance(self.collocation_deg, int) or not 1 <= self.collocation_deg <= 5:
            raise ControlError(
                f"The 'collocation_deg' parameter of OfflineSettings must be an int in 1..5. Got {self.collocation_deg!r} instead."
            )
        _positive(owner, "move_penalty", self.move_penalty, allow_zero=True)
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ControlError(f"The 'max_iter' parameter of OfflineSettings must be an int >= 1. Got {self.max_iter!r} instead.")
        _positive(owner, "tol", self.tol)
        _positive(owner, "max_violation", self.max_violation, allow_zero=True)
        _choice(owner, "model", self.model, ("plant", "control"))
        _positive(owner, "check_dt", self.check_dt)
        if not isinstance(self.backoff_rounds, int) or self.backoff_rounds < 0:
            raise ControlError(
                f"The 'backoff_rounds' parameter of OfflineSettings must be an int >= 0. Got {self.backoff_rounds!r} instead."
            )


@dataclass(frozen=True)
class BaselineSettings:
    """Constant and exponential feed baselines, each tuned over its one parameter by a grid search.

    Attributes
    ----------
    n_grid : int
        Number of grid points for the constant feed rate (between feed_min and feed_max) and
        for the exponential feed's set growth rate.
    mu_min, mu_max : float
        Range of the exponential feed's set specific growth rate [1/h].
    yield_xs : float
        Biomass yield on glucose used by the classical exponential-feed formula [gDW/mmol].
    glucose_feed : float
        Glucose concentration of the feed [mmol/L] used by the exponential-feed formula.
    sim_dt : float
        Simulation step of the baselines' evaluation [h].
    """

    n_grid: int = 25
    mu_min: float = 0.02
    mu_max: float = 0.8
    yield_xs: float = 0.09
    glucose_feed: float = 500.0
    sim_dt: float = 0.05

    def __post_init__(self) -> None:
        owner = "BaselineSettings"
        if not isinstance(self.n_grid, int) or self.n_grid < 2:
            raise ControlError(f"The 'n_grid' parameter of BaselineSettings must be an int >= 2. Got {self.n_grid!r} instead.")
        _positive(owner, "mu_min", self.mu_min)
        _positive(owner, "mu_max", self.mu_max)
        if self.mu_max <= self.mu_min:
            raise ControlError(f"The 'mu_max' parameter of BaselineSettings must exceed mu_min. Got {self.mu_max!r} instead.")
        _positive(owner, "yield_xs", self.yield_xs)
        _positive(owner, "glucose_feed", self.glucose_feed)
        _positive(owner, "sim_dt", self.sim_dt)


@dataclass(frozen=True)
class ClosedLoopSettings:
    """The closed-loop experiment: plant, measurements, estimator, controller.

    Attributes
    ----------
    plant : str
        ``"nominal"`` (the control model itself), ``"perturbed"`` (the control model with
        parameters scaled by ``plant_parameter_scale``) or ``"dfba"`` (a user-supplied plant step
        function, e.g. the LP-in-the-loop dFBA).
    plant_parameter_scale : tuple of (str, float)
        Multiplicative perturbation of named model parameters in the plant [-].
    plant_substeps : int
        Integrator output substeps per control step (trajectory resolution of the true state).
    progress : bool
        Show a progress bar.
    """

    plant: str = "nominal"
    plant_parameter_scale: tuple[tuple[str, float], ...] = ()
    plant_substeps: int = 5
    progress: bool = True

    def __post_init__(self) -> None:
        _choice("ClosedLoopSettings", "plant", self.plant, ("nominal", "perturbed", "dfba"))
        for item in self.plant_parameter_scale:
            if len(item) != 2 or not isinstance(item[0], str) or not (isinstance(item[1], (int, float)) and item[1] > 0):
                raise ControlError(
                    f"The 'plant_parameter_scale' parameter of ClosedLoopSettings must hold (name, factor > 0) pairs. Got {item!r} instead."
                )
        if not isinstance(self.plant_substeps, int) or self.plant_substeps < 1:
            raise ControlError(
                f"The 'plant_substeps' parameter of ClosedLoopSettings must be an int >= 1. Got {self.plant_substeps!r} instead."
            )


def settings_from_dict(cls: type, data: dict | None, owner: str):
    """Build a settings dataclass from a TOML table, rejecting unknown keys.

    Parameters
    ----------
    cls : type
        The frozen settings dataclass.
    data : dict or None
        The table (None gives the defaults).
    owner : str
        Name of the table, used in error messages.
    """
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ControlError(f"Unknown key(s) {unknown} in [{owner}]; expected some of {sorted(known)}.")
    if cls is MeasurementSettings and "channels" in data:
        data["channels"] = tuple(settings_from_dict(MeasurementChannel, c, f"{owner}.channels") for c in data["channels"])
    if cls is ClosedLoopSettings and "plant_parameter_scale" in data:
        pps = data["plant_parameter_scale"]
        if isinstance(pps, dict):
            data["plant_parameter_scale"] = tuple((str(k), float(v)) for k, v in pps.items())
    return cls(**data)
