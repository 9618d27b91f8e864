"""The fed-batch process (paper 1, Eq. 2): settings, uptake kinetics, the CasADi model with the
embedded surrogate, and two simulators (surrogate and LP-in-the-loop dFBA).

Names are imported when first used, so ``import mpc_bio.process.settings`` (e.g. by ``mpc-bio
validate``) imports no CasADi; torch/l4casadi are imported only through :func:`embed_cell_model`
(via :mod:`mpc_bio.embed`).
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

_LAZY = {
    ".cell": ("CellFluxModel", "embed_cell_model", "required_outputs"),
    ".dfba": ("simulate_dfba",),
    ".kinetics": ("gated_rate", "glucose_uptake", "oxygen_uptake"),
    ".model": ("FedBatchODE", "fedbatch_ode"),
    ".result": ("FedBatchResult", "SimulationEvent"),
    ".settings": ("FedBatchSettings", "FeedProfile", "ProcessSettingsError", "UptakeKinetics"),
    ".simulate": ("SurrogateSimulator", "fedbatch_integrator", "simulate_surrogate"),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = __dir__()
