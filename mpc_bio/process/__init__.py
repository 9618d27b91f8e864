"""The fed-batch process (paper 1, Eq. 2): settings, uptake kinetics, the CasADi model with the
embedded surrogate, and two simulators (surrogate and LP-in-the-loop dFBA).

torch/l4casadi are imported only through :func:`embed_cell_model` (via :mod:`mpc_bio.embed`).
"""

from mpc_bio.process.cell import CellFluxModel, embed_cell_model, required_outputs
from mpc_bio.process.kinetics import gated_rate, glucose_uptake, oxygen_uptake
from mpc_bio.process.model import FedBatchODE, fedbatch_ode
from mpc_bio.process.result import FedBatchResult, SimulationEvent
from mpc_bio.process.settings import FedBatchSettings, FeedProfile, ProcessSettingsError, UptakeKinetics
from mpc_bio.process.simulate import SurrogateSimulator, fedbatch_integrator, simulate_dfba, simulate_surrogate

__all__ = [
    "FedBatchSettings",
    "FeedProfile",
    "UptakeKinetics",
    "ProcessSettingsError",
    "CellFluxModel",
    "embed_cell_model",
    "required_outputs",
    "glucose_uptake",
    "oxygen_uptake",
    "gated_rate",
    "FedBatchODE",
    "fedbatch_ode",
    "fedbatch_integrator",
    "SurrogateSimulator",
    "simulate_surrogate",
    "simulate_dfba",
    "FedBatchResult",
    "SimulationEvent",
]
