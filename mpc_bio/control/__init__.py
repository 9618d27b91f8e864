"""Feed-rate MPC, state estimation and offline feed optimisation for the fed-batch process (DESIGN.md §5)."""

from mpc_bio.control.model import (
    ControlModel,
    Trajectory,
    constraint_margins,
    control_model_from_do_mpc,
    make_integrator,
    objective_value,
    simulate_feed,
)
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
    settings_from_dict,
)

__all__ = [
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
    "control_model_from_do_mpc",
    "make_integrator",
    "objective_value",
    "settings_from_dict",
    "simulate_feed",
]
