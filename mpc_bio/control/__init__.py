"""Feed-rate MPC, state estimation and offline feed optimisation for the fed-batch process.

do_mpc is imported only when an MPC or MHE is built.
"""

from mpc_bio.control.baselines import BaselineResult, exponential_feed_law, tune_constant_feed, tune_exponential_feed
from mpc_bio.control.closed_loop import ClosedLoopResult, IntegratorPlant, estimation_rmse, run_closed_loop
from mpc_bio.control.distill import DistilledCell, distill_cell_model
from mpc_bio.control.estimation import (
    ExtendedKalmanFilter,
    MeasurementRecord,
    MovingHorizonEstimator,
    build_estimator,
    measurement_function,
    sample_measurements,
)

from mpc_bio.control.model import (
    ControlModel,
    Trajectory,
    constraint_margins,
    make_integrator,
    objective_value,
    simulate_feed,
)
from mpc_bio.control.mpc import FeedMPC, MPCStepRecord, build_mpc
from mpc_bio.control.network_mpc import NetworkMPC, build_network_mpc
from mpc_bio.control.offline import OfflineResult, optimize_feed_profile, piecewise_feed
from mpc_bio.control.process_adapter import DfbaPlant, control_model_from_process, process_roles
from mpc_bio.control.settings import (
    BaselineSettings,
    BatchProblem,
    ClosedLoopSettings,
    ControlError,
    EstimatorSettings,
    MeasurementChannel,
    MeasurementSettings,
    MPCSettings,
    OfflineSettings,
    ReactorRoles,
)

__all__ = [
    "BaselineResult",
    "ClosedLoopResult",
    "DfbaPlant",
    "DistilledCell",
    "ExtendedKalmanFilter",
    "FeedMPC",
    "NetworkMPC",
    "IntegratorPlant",
    "MeasurementRecord",
    "MovingHorizonEstimator",
    "MPCStepRecord",
    "OfflineResult",
    "build_estimator",
    "build_mpc",
    "build_network_mpc",
    "control_model_from_process",
    "distill_cell_model",
    "estimation_rmse",
    "exponential_feed_law",
    "measurement_function",
    "optimize_feed_profile",
    "piecewise_feed",
    "process_roles",
    "run_closed_loop",
    "sample_measurements",
    "tune_constant_feed",
    "tune_exponential_feed",
    "BaselineSettings",
    "BatchProblem",
    "ClosedLoopSettings",
    "ControlError",
    "ControlModel",
    "EstimatorSettings",
    "MeasurementChannel",
    "MeasurementSettings",
    "MPCSettings",
    "OfflineSettings",
    "ReactorRoles",
    "Trajectory",
    "constraint_margins",
    "make_integrator",
    "objective_value",
    "simulate_feed",
]
