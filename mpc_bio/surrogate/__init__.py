"""Neural surrogates of the pFBA map (paper 1, Eq. 5): training, mass-balance layer, metrics, artifacts.

torch is imported (here and in mpc_bio.embed) only when a name that needs it is first used, so
``mpc-bio --help`` and the settings stay light.
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

from mpc_bio.surrogate.settings import SurrogateSettings as SurrogateSettings  # imported here: light

_LAZY = {
    ".training": ("train_surrogate", "select_device", "TrainingDataError"),
    ".artifact": ("Surrogate", "DomainWarning", "ArtifactError", "ArtifactIntegrityWarning", "load_surrogate", "default_surrogate"),
    ".shipped": ("DEFAULT_ARTIFACT", "SHIPPED_SURROGATES"),
    ".network": ("MLPSpec", "SurrogateModule"),
    ".projection": ("MassBalanceProjection", "build_projection", "mass_balance_residual"),
    ".metrics": ("SurrogateMetrics", "compute_metrics", "TARGETS_DEFAULT"),
    ".analysis": ("SurrogateEvaluation", "evaluate_surrogate", "uptake_response", "compare_fluxes", "sensitivity_map"),
    ".bends": ("bend_points",),
    ".misses": ("miss_points",),
    ".build": ("build_surrogate", "BuildSettings", "BuildResult", "fresh_point_errors"),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=("SurrogateSettings",))
__all__ = __dir__()
