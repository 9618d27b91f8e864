"""Feed-rate MPC, state estimation and offline feed optimisation for the fed-batch process.

Names are imported when first used, so ``import mpc_bio.control.settings`` (e.g. by ``mpc-bio
validate``) imports no CasADi; do_mpc is imported only when an MPC or MHE is built.
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

_LAZY = {
    ".baselines": ("BaselineResult", "exponential_feed_law", "tune_constant_feed", "tune_exponential_feed"),
    ".closed_loop": ("ClosedLoopResult", "IntegratorPlant", "estimation_rmse", "run_closed_loop"),
    ".distill": ("DistilledCell", "distill_cell_model"),
    ".estimation": (
        "ExtendedKalmanFilter",
        "MeasurementRecord",
        "MovingHorizonEstimator",
        "build_estimator",
        "measurement_function",
        "sample_measurements",
    ),
    ".model": ("ControlModel", "Trajectory", "constraint_margins", "make_integrator", "objective_value", "simulate_feed"),
    ".mpc": ("FeedMPC", "MPCStepRecord", "build_mpc"),
    ".network_mpc": ("NetworkMPC", "build_network_mpc"),
    ".offline": ("OfflineResult", "optimize_feed_profile", "piecewise_feed"),
    ".process_adapter": ("DfbaPlant", "control_model_from_process", "process_roles"),
    ".settings": (
        "BaselineSettings",
        "BatchProblem",
        "ClosedLoopSettings",
        "ControlError",
        "EstimatorSettings",
        "MPCSettings",
        "MeasurementChannel",
        "MeasurementSettings",
        "OfflineSettings",
        "ReactorRoles",
    ),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = __dir__()
