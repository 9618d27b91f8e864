"""Frozen, validated settings of the control stage (MPC, estimation, offline optimisation, closed loop).

Units used throughout the control stage: time in h, volume in L, feed rate in L/h, amounts of
extracellular species in mmol, biomass in gDW, concentrations in mmol/L (species) and gDW/L
(biomass). Every field declares its unit, range and doc (:mod:`mpc_bio.settings`), which the scenario
tables of the control kinds read too (:mod:`mpc_bio.scenarios.kinds`); :meth:`~mpc_bio.settings.Settings.from_dict`
builds each from its scenario table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.settings import FRACTION, POSITIVE, Settings, setting

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
]

OBJECTIVES = ("biomass", "product", "productivity")
MEASURABLE = ("volume", "biomass", "glucose", "acetate", "product")


class ControlError(MpcBioError):
    """A control setting or model is inconsistent with what the control stage needs."""


@dataclass(frozen=True)
class ReactorRoles(Settings):
    """Which state, input and parameter of a process model play which role in the control problem."""

    error: ClassVar[type] = ControlError

    volume: str = setting("V", doc="Name of the reactor volume state (L).")
    glucose: str = setting("n_glc", doc="Name of the glucose amount state (mmol).")
    biomass: str = setting("n_X", doc="Name of the biomass amount state (gDW).")
    acetate: str | None = setting("n_ac", doc="Name of the acetate amount state (mmol); None when the model has none.")
    product: str | None = setting(None, doc='Name of the product amount state (mmol) used by the "product" objective.')
    feed: str = setting("F", doc="Name of the feed-rate input (L/h).")
    vmax: str | None = setting(
        "vmax_glc",
        doc=(
            "Name of the model parameter holding the glucose uptake Vmax (mmol/gDW/h), the parameter an estimator may "
            "estimate and a mismatched plant may perturb; None when it is not a parameter."
        ),
    )


@dataclass(frozen=True)
class BatchProblem(Settings):
    """The fed-batch optimal-control problem shared by the MPC, the offline optimiser and the baselines."""

    error: ClassVar[type] = ControlError

    batch_time: float = setting(10.0, unit="h", **POSITIVE, doc="Length of the batch; the objective is evaluated at this time.")
    objective: str = setting(
        "biomass",
        choices=OBJECTIVES,
        doc=(
            'What the batch maximises: "biomass" (the biomass amount at the end, gDW), "product" (the product amount at '
            'the end, mmol; needs ReactorRoles.product) or "productivity" (the final biomass concentration per batch time, gDW/L/h).'
        ),
    )
    feed_min: float = setting(0.0, unit="L/h", low=0.0, doc="Lower bound on the feed rate.")
    feed_max: float = setting(0.2, unit="L/h", **POSITIVE, doc="Upper bound on the feed rate (> feed_min).")
    volume_max: float = setting(2.0, unit="L", **POSITIVE, doc="Maximum reactor volume (hard in the offline problem and the MPC).")
    glucose_max: float = setting(
        50.0, unit="mmol/L", **POSITIVE, doc="Upper limit of the glucose concentration (soft in the MPC, hard offline)."
    )
    acetate_max: float = setting(
        30.0,
        unit="mmol/L",
        **POSITIVE,
        doc="Upper limit of the acetate concentration (soft in the MPC, hard offline); ignored when the model has no acetate state.",
    )
    constraint_tolerance: float = setting(
        0.02,
        unit="-",
        low=0.0,
        doc="Relative tolerance on constraint violation when checking trajectories (fraction of the limit, e.g. 0.02 = 2 %).",
    )

    def _check(self) -> None:
        if self.feed_max <= self.feed_min:
            raise self.invalid("feed_max", f"> feed_min = {self.feed_min:g} L/h", self.feed_max)


@dataclass(frozen=True)
class MPCSettings(Settings):
    """Settings of the economic feed-rate MPC (do-mpc, orthogonal collocation).

    The prediction horizon spans ``n_horizon * t_step`` h; after the end of the batch the
    predicted dynamics are frozen (a time-varying flag multiplies the right-hand side), so the
    Mayer term always scores the state at the end of the batch when the horizon reaches it.
    """

    error: ClassVar[type] = ControlError

    t_step: float = setting(0.5, unit="h", **POSITIVE, doc="Sampling time of the controller.")
    n_horizon: int = setting(20, low=1, doc="Number of prediction intervals.")
    collocation_deg: int = setting(2, low=1, high=5, doc="Degree of the Radau collocation polynomial per interval.")
    collocation_ni: int = setting(1, low=1, doc="Number of collocation finite elements per interval.")
    move_penalty: float = setting(
        1.0,
        low=0.0,
        doc="Weight on squared feed moves, in objective units per (L/h)^2 (the objective is scaled by objective_scale).",
    )
    objective_scale: float = setting(
        1.0, unit="objective unit", **POSITIVE, doc="The economic objective is divided by this number, so it is O(1)."
    )
    soft_penalty: float = setting(
        1e3,
        **POSITIVE,
        doc="Penalty on the slack of the soft constraints, per unit of violation (L or mmol/L), in scaled objective units.",
    )
    backoff: float = setting(
        0.05,
        **FRACTION,
        high_strict=True,
        doc=(
            "Fraction of the glucose and acetate limits the MPC keeps free as a margin for estimation error and mismatch: "
            "it plans against (1 - backoff) * limit."
        ),
    )
    robust_std: float = setting(
        0.0,
        low=0.0,
        doc=(
            "Feed cap for the uncertainty of the estimated parameter (the glucose Vmax, EstimatorSettings.estimate_vmax), "
            "any backend (mpc_bio.control.closed_loop.RobustFeedCap): when > 0, the MPC's feed is applied only if the "
            "limits (backed off as in the MPC) hold over the horizon, with the later feeds at feed_min or as the MPC "
            "planned them (whichever holds them better), for the parameter at the estimate -/+ robust_std of the "
            "estimator's standard deviations; otherwise the largest feed below it that does (no more violation than "
            "feed_min as this step's feed gives). A feed cannot be taken back: a fill planned while the parameter is "
            "uncertain (the first hours) would otherwise commit the plant to a limit it breaks if the parameter is off. "
            "The cap vanishes as the standard deviation shrinks. 0: no cap; 2: a two-sided 95 % interval."
        ),
    )
    hold_margin: bool = setting(
        True,
        doc=(
            "When the estimate is already inside the backoff margin of a concentration limit (between (1 - backoff) * "
            "limit and the limit), plan against the estimate's own value (at most the limit) instead of the backed-off "
            "limit for the whole horizon: the plan may not go higher but need not come back down at once. Otherwise the "
            "soft limit's penalty, many times the objective's gradient, makes the plan starve the culture to get back "
            "below the backed-off limit within one step, although the margin is there to be used by estimation error. "
            "The backed-off limit returns as soon as the estimate is below it. False: always the backed-off limits."
        ),
    )
    max_iter: int = setting(200, low=0, doc="IPOPT iteration limit per warm-started step.")
    cold_max_iter: int | None = setting(
        None,
        low=0,
        doc=(
            "IPOPT iteration limit of a cold solve (the first after a reset or a failure, every solve with "
            "warm_start = false); default 5 * max_iter. From a crude guess (a constant feed) the first solve needs "
            "several hundred iterations; from the offline optimum about a hundred."
        ),
    )
    tol: float = setting(1e-6, **POSITIVE, doc="IPOPT convergence tolerance.")
    safe_feed: float = setting(0.0, unit="L/h", low=0.0, doc="Feed rate applied after a failed solve when no previous plan exists.")
    symvar: str = setting(
        "SX",
        choices=("SX", "MX"),
        doc="The symbolic type of the control model (SX is faster; MX is needed for l4casadi externals).",
    )
    linear_solver: str = setting("mumps", doc='IPOPT linear solver ("mumps" ships with CasADi).')
    warm_start: bool = setting(
        True,
        doc=(
            "Start IPOPT from the previous solution shifted by one interval, with its multipliers shifted too, and "
            "IPOPT's warm-start options (warm_start_init_point, small bound push, small initial barrier parameter). "
            "Otherwise every solve starts cold (zero multipliers, default options) from the shifted primal solution. "
            "The first solve after a reset or a failure always starts cold from a guess simulated under the plan."
        ),
    )
    backend: str = setting(
        "do-mpc",
        choices=("do-mpc", "network", "network_taylor"),
        doc=(
            "How the MPC evaluates the model: \"do-mpc\" (do-mpc's collocation NLP with the control model's CasADi graph, "
            'a distilled spline or the network as a native graph), "network" (the surrogate network itself in the loop, '
            "mpc_bio.control.network_mpc: the same collocation NLP with the network evaluated by one batched torch call "
            "for all collocation points per evaluation, with its value, exact block-diagonal Jacobian and Hessian, and "
            'everything else compiled as CasADi SX) or "network_taylor" (the network in the loop through Taylor models, '
            "mpc_bio.control.taylor_mpc: the same NLP, all CasADi SX, with the network replaced at each collocation point "
            "by its Taylor model around the previous solution's uptakes, the models' coefficients parameters of the NLP "
            "from one batched torch call, re-linearised SQP-style within a trust region until the uptakes stop moving)."
        ),
    )
    taylor_order: int = setting(
        2,
        choices=(1, 2),
        doc=(
            'backend = "network_taylor" only: order of the Taylor model of the network at each collocation point (1: '
            "value and Jacobian; 2: with the second derivatives, so the outer iterations converge quadratically "
            "where the network is smooth)."
        ),
    )
    taylor_tol: float = setting(
        1e-3,
        unit="mmol/gDW/h",
        **POSITIVE,
        doc=(
            'backend = "network_taylor" only: the outer (re-linearisation) iterations of a step stop when no uptake at '
            "any collocation point moved by more than this from the expansion point of the last Taylor models."
        ),
    )
    taylor_max_iter: int = setting(
        8,
        low=1,
        doc=(
            'backend = "network_taylor" only: largest number of outer iterations (NLP solves on Taylor models) per '
            "step; the last solve's plan is applied if the uptakes are still moving then (recorded as not converged). "
            "1: a real-time iteration, one solve per step on first-order models without trust region."
        ),
    )
    taylor_trust_radius: float | None = setting(
        None,
        unit="mmol/gDW/h",
        low=0.0,
        strict=True,
        doc=(
            'backend = "network_taylor" only: initial trust radius, the largest move of each uptake at each '
            "collocation point from its expansion point in one outer iteration after the first (the first solve of a "
            "step, on first-order models, is unbounded: its start need not have a solution near its uptakes). It halves "
            "(to at most half the step) whenever an outer iteration's Taylor models mispredicted the network at the new "
            "uptakes and doubles after a good prediction whose step hit it, so the iterations converge where the plan "
            "rides a kink line of the network. None (default): 5 % of the network's smallest input span."
        ),
    )
    network_hessian: str = setting(
        "auto",
        choices=("auto", "exact", "convexified"),
        doc=(
            'backend = "network" only: the network\'s part of IPOPT\'s Hessian of the Lagrangian, "exact", '
            '"convexified" (per collocation point, the network\'s curvature, its second derivatives weighted by their '
            "multipliers, a k x k matrix, with each eigenvalue replaced by its absolute value, so IPOPT needs no large "
            "regularisation where the network bends sharply; the KKT conditions, hence the solutions, are unchanged) "
            'or "auto" (convexified for networks with kink features, exact otherwise).'
        ),
    )
    network_kink_width: float | None = setting(
        None,
        unit="mmol/gDW/h",
        low=0.0,
        doc=(
            'backend = "network" only: smallest width, in uptake units, over which the MPC\'s copy of the network bends '
            "at its kink features (mpc_bio.embed.batched.BatchedNetwork kink_width). A surrogate with kink features "
            "bends almost sharply across its kink lines (where a reaction of the pFBA map switches on), and the optimal "
            "plan rides such a line; its curvature there, about 1 / width, makes IPOPT take many short steps. The MPC's "
            "model widens every sharper bend to this width (the plant, the estimator and the offline optimum keep the "
            "trained network), which moves the fluxes only within about one width of a kink line, by about width * "
            "log 2 times the jump of a flux's slope across it. 0: the trained network exactly; None (default): the "
            "surrogate's kink_reach, the width over which a network without kink features rounds a kink off (so the "
            "MPC sees the kinks as a plain smooth network trained on the same grid would; mpc-bio build-surrogate sets "
            "it to half a step of its training grid), capped at 1 % of the smallest span of its input domain."
        ),
    )
    warm_start_correction: bool = setting(
        True,
        doc=(
            'backend = "network" only: when the model parameters (an estimated Vmax) changed since the last solve, '
            "correct the shifted solution onto the new state estimate and parameters before a warm start (the feeds "
            "kept, the predicted states solved from the collocation equations by Newton's method, the slacks of the soft "
            "limits reset), so IPOPT starts from a point that satisfies the model equations instead of one that breaks "
            "all of them by the estimate's jump. A new state estimate alone breaks only the initial-state constraint, "
            "which is linear and met by IPOPT's first step: no correction then."
        ),
    )
    correction_max_iter: int = setting(
        10, low=1, doc='backend = "network" only: largest number of Newton iterations of the warm start\'s correction.'
    )
    correction_tol: float = setting(
        1e-9,
        **POSITIVE,
        doc=(
            'backend = "network" only: the warm start\'s correction stops when every equality constraint of the NLP '
            "(scaled states) is met within this; if it is not within correction_max_iter iterations, the uncorrected "
            "shifted solution is used."
        ),
    )
    torch_threads: int = setting(
        1, low=1, doc='backend = "network" only: torch intra-op threads inside the solver loop (restored after every step).'
    )
    device: str = setting(
        "auto",
        choices=("auto", "cpu", "cuda"),
        doc='backend = "network" only: torch device, "auto" (cuda when available, else cpu), "cpu" or "cuda".',
    )
    network_evaluator: str = setting(
        "torch",
        choices=("torch", "l4casadi"),
        doc=(
            'backend = "network" only: what makes the batched call of the network at all collocation points, "torch" '
            '(the forward-mode propagation run by torch from Python, mpc_bio.embed.batched) or "l4casadi" (the same '
            "propagation traced to TorchScript and compiled by L4CasADi into a CasADi external that libtorch runs from "
            "C++, mpc_bio.embed.l4casadi_batched; cpu only, compiled once per network and horizon, tens of seconds). "
            "Both give the same values and derivatives (to about 1e-10)."
        ),
    )

    def _check(self) -> None:
        if self.taylor_trust_radius is not None and self.taylor_trust_radius < 10 * self.taylor_tol:
            raise self.invalid("taylor_trust_radius", f"None or >= 10 * taylor_tol = {10 * self.taylor_tol}", self.taylor_trust_radius)
        if self.network_evaluator == "l4casadi" and self.device == "cuda":
            raise self.invalid("device", '"auto" or "cpu" with network_evaluator = "l4casadi" (its library runs on the cpu)', self.device)


@dataclass(frozen=True)
class MeasurementChannel(Settings):
    """One measured quantity: what, how often, how noisy."""

    error: ClassVar[type] = ControlError

    quantity: str = setting(
        choices=MEASURABLE,
        doc="Measured quantity: volume (L), biomass (gDW/L), glucose, acetate or product (mmol/L).",
    )
    period: float = setting(unit="h", **POSITIVE, doc="Sampling period; rounded to a multiple of the closed-loop step.")
    noise_std: float = setting(
        unit="unit of the quantity", **POSITIVE, doc="Standard deviation of the additive Gaussian noise, in the quantity's unit."
    )
    dropout: float = setting(
        0.0,
        **FRACTION,
        high_strict=True,
        doc="Probability that a scheduled sample is lost (recorded as NaN and flagged).",
    )


def _default_channels() -> tuple[MeasurementChannel, ...]:
    return (
        MeasurementChannel("volume", 0.5, 0.005),
        MeasurementChannel("biomass", 1.0, 0.1),
        MeasurementChannel("glucose", 1.0, 0.5),
    )


@dataclass(frozen=True)
class MeasurementSettings(Settings):
    """Noisy, sampled measurements of the plant."""

    error: ClassVar[type] = ControlError

    channels: tuple[MeasurementChannel, ...] = setting(
        factory=_default_channels,
        min_items=1,
        doc=(
            "The measured quantities, rates and noise levels: one [[measurements.channels]] table per quantity. "
            "Default: volume every 0.5 h, biomass and glucose every 1 h."
        ),
    )
    seed: int = setting(0, low=0, doc="Seed of the noise and dropout generator.")

    def _check(self) -> None:
        names = [c.quantity for c in self.channels]
        if len(set(names)) != len(names):
            raise self.invalid("channels", "a list of channels with no repeated quantity", names)


@dataclass(frozen=True)
class EstimatorSettings(Settings):
    """Settings of the state (and parameter) estimator."""

    error: ClassVar[type] = ControlError

    kind: str = setting(
        "ekf",
        choices=("ekf", "mhe", "none"),
        doc=(
            'The estimator: "ekf" (continuous-discrete extended Kalman filter with CasADi Jacobians), "mhe" (do-mpc '
            'moving-horizon estimator) or "none" (the true state is fed to the MPC; for reference runs only).'
        ),
    )
    initial_error: float = setting(
        0.2,
        unit="-",
        low=-1.0,
        strict=True,
        doc="Relative error of the initial estimate: x_hat0 = (1 + initial_error) * x_true0 for every state except the volume.",
    )
    initial_rel_std: float = setting(0.3, unit="-", **POSITIVE, doc="Relative standard deviation of the initial estimate (P0 diagonal).")
    process_rel_std: float = setting(0.01, unit="-", low=0.0, doc="Relative process-noise standard deviation per sqrt(h), per state.")
    process_abs_std: float = setting(
        1e-3,
        unit="state unit/sqrt(h)",
        **POSITIVE,
        doc="Absolute floor of the process-noise standard deviation per sqrt(h), in state units.",
    )
    estimate_vmax: bool = setting(False, doc="Estimate the glucose uptake Vmax as an extra (constant) state.")
    vmax_rel_std: float = setting(0.3, unit="-", **POSITIVE, doc="Prior relative standard deviation of Vmax.")
    vmax_initial_error: float = setting(0.0, unit="-", low=-1.0, strict=True, doc="Relative error of the initial Vmax guess.")
    mhe_horizon: int = setting(8, low=2, doc="Number of steps in the MHE window.")
    mhe_arrival_rel_std: float = setting(
        0.05,
        unit="-",
        **POSITIVE,
        doc=(
            "Relative standard deviation of the MHE arrival cost (fixed weight on the deviation of the window's first "
            "state from the previous estimate)."
        ),
    )
    ekf_integrator: str = setting(
        "cvodes",
        choices=("cvodes", "rk4"),
        doc=(
            'Integrator of the EKF prediction: "cvodes" (adaptive BDF with sensitivities; robust when glucose runs out) '
            'or "rk4" (fixed-step, integration_substeps per step; cheaper, only for non-stiff models).'
        ),
    )
    integration_substeps: int = setting(4, low=1, doc='RK4 substeps per step of the EKF prediction with ekf_integrator = "rk4".')


@dataclass(frozen=True)
class OfflineSettings(Settings):
    """Offline (whole-batch) feed-profile optimisation by direct collocation."""

    error: ClassVar[type] = ControlError

    n_intervals: int = setting(20, low=1, doc="Number of piecewise-constant feed intervals over the batch.")
    collocation_deg: int = setting(3, low=1, high=5, doc="Radau collocation degree per interval.")
    move_penalty: float = setting(0.0, low=0.0, doc="Weight on squared feed moves (same scaling as the MPC), for a smoother profile.")
    max_iter: int = setting(1000, low=1, doc="IPOPT iteration limit.")
    tol: float = setting(1e-8, **POSITIVE, doc="IPOPT tolerance.")
    max_violation: float = setting(
        0.005,
        unit="-",
        low=0.0,
        doc=(
            "Largest relative violation of the volume, glucose and acetate limits accepted on the fine check grid between "
            "collocation points; beyond it the violated limits are backed off by the violation found and the problem is "
            "solved again."
        ),
    )
    check_dt: float = setting(
        0.01, unit="h", **POSITIVE, doc="Step of the fine grid on which the optimum is re-simulated (CVODES) and checked."
    )
    backoff_rounds: int = setting(5, low=0, doc="Largest number of re-solves with backed-off limits.")
    model: str = setting(
        "plant",
        choices=("plant", "control"),
        doc=(
            'Model the scenario runners optimise with: "plant" (the full surrogate) or "control" (the controller\'s model, '
            "e.g. the distilled spline: much faster to build and solve). The profile is always re-simulated, checked and "
            "backed off on the plant model, and its objective there is the one reported."
        ),
    )


@dataclass(frozen=True)
class BaselineSettings(Settings):
    """Constant and exponential feed baselines, each tuned over its one parameter by a grid search."""

    error: ClassVar[type] = ControlError
    renamed: ClassVar[dict[str, str]] = {"glucose_feed": "feed_glucose"}

    n_grid: int = setting(
        25,
        low=2,
        doc="Number of grid points for the constant feed rate (between feed_min and feed_max) and for the exponential feed's set growth rate.",
    )
    mu_min: float = setting(0.02, unit="1/h", **POSITIVE, doc="Lower end of the exponential feed's set specific growth rate.")
    mu_max: float = setting(0.8, unit="1/h", **POSITIVE, doc="Upper end of the exponential feed's set specific growth rate (> mu_min).")
    yield_xs: float = setting(
        0.09, unit="gDW/mmol", **POSITIVE, doc="Biomass yield on glucose used by the classical exponential-feed formula."
    )
    feed_glucose: float = setting(
        500.0, unit="mmol/L", **POSITIVE, doc="Glucose concentration of the feed used by the exponential-feed formula."
    )
    sim_dt: float = setting(0.05, unit="h", **POSITIVE, doc="Simulation step of the baselines' evaluation.")

    def _check(self) -> None:
        if self.mu_max <= self.mu_min:
            raise self.invalid("mu_max", f"> mu_min = {self.mu_min:g} 1/h", self.mu_max)


@dataclass(frozen=True)
class ClosedLoopSettings(Settings):
    """The closed-loop experiment: plant, measurements, estimator, controller."""

    error: ClassVar[type] = ControlError

    plant: str = setting(
        "nominal",
        choices=("nominal", "perturbed", "dfba"),
        doc=(
            'The simulated plant: "nominal" (the control model itself), "perturbed" (the control model with parameters '
            'scaled by plant_parameter_scale) or "dfba" (a user-supplied plant step function, e.g. the LP-in-the-loop dFBA).'
        ),
    )
    plant_parameter_scale: tuple[tuple[str, float], ...] = setting(
        (),
        unit="-",
        **POSITIVE,
        doc="Multiplicative perturbation of named model parameters in the plant, e.g. { vmax_glc = 0.8 }.",
    )
    plant_substeps: int = setting(5, low=1, doc="Integrator output substeps per control step (trajectory resolution of the true state).")
    progress: bool = setting(True, doc="Show a progress bar.")
