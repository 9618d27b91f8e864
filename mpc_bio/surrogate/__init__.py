"""Neural surrogates of the pFBA map (paper 1, Eq. 5): training, mass-balance layer, metrics, artifacts.

torch is imported (here and in mpc_bio.embed) only when a name that needs it is first used, so
``mpc-bio --help`` and the settings stay light.
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

from mpc_bio.surrogate.settings import SurrogateSettings

_LAZY = {
    "train_surrogate": ".training",
    "select_device": ".training",
    "TrainingDataError": ".training",
    "Surrogate": ".artifact",
    "DomainWarning": ".artifact",
    "ArtifactError": ".artifact",
    "ArtifactIntegrityWarning": ".artifact",
    "load_surrogate": ".artifact",
    "default_surrogate": ".artifact",
    "DEFAULT_ARTIFACT": ".shipped",
    "SHIPPED_SURROGATES": ".shipped",
    "MLPSpec": ".network",
    "SurrogateModule": ".network",
    "MassBalanceProjection": ".projection",
    "build_projection": ".projection",
    "mass_balance_residual": ".projection",
    "SurrogateMetrics": ".metrics",
    "compute_metrics": ".metrics",
    "TARGETS_DEFAULT": ".metrics",
    "SurrogateEvaluation": ".analysis",
    "evaluate_surrogate": ".analysis",
    "uptake_response": ".analysis",
    "compare_fluxes": ".analysis",
    "sensitivity_map": ".analysis",
    "bend_points": ".bends",
    "miss_points": ".misses",
    "build_surrogate": ".build",
    "BuildSettings": ".build",
    "BuildResult": ".build",
    "fresh_point_errors": ".build",
}

__all__ = ["SurrogateSettings", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=("SurrogateSettings",))
