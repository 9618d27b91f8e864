"""NOMAD (Paper 2): kinetic-model ensembles, screening, metabolic control analysis and strain design.

Ensemble stage (this part):

    network  = build_network()                       # e_coli_core + shikimate branch, no ANPRT
    states   = sample_reference_states(network)      # concentrations, displacements, Keq
    ensemble = sample_ensemble(network, states)      # ORACLE: saturations -> Km -> Vmax
    screen   = screen_ensemble(ensemble)             # (i) stability (ii) time constant (iii) return (iv) robustness
    control  = compute_control_coefficients(ensemble, screen.survivors)

Data contract for the design stage (NRA): :class:`ControlCoefficients`, stacked over models:

- ``model_index`` (N,): models of the ensemble;
- ``concentration`` (N, n_met, n_enz): C^x = d ln x / d ln e for every balanced metabolite
  (``metabolite_ids``), dependent (conserved-moiety) metabolites included;
- ``flux`` (N, n_rxn, n_enz): C^v = d ln|v| / d ln e (``reaction_ids``); enzyme j is the enzyme of
  reaction j (``enzyme_ids == reaction_ids``), its activity scales Vmax_j;
- ``stoichiometry`` (n_rxn, n_met): d ln Gamma_r / d ln x_i, so after log changes dlnx the
  displacement is ``ln_displacement + stoichiometry @ dlnx`` (boundary metabolites fixed,
  protons/water excluded); a reaction keeps its direction while that stays of the sign of
  ``ln_displacement`` (negative for positive flux);
- ``ln_displacement`` (N, n_rxn): reference ln(Gamma/Keq) = Delta_r G'/RT; the irreversible growth
  reaction carries -100;
- ``reference_fluxes`` (N, n_rxn) mmol/gDW/h, ``reference_concentrations`` (N, n_met) mM;
- ``product_reaction``, ``substrate_reaction``, ``growth_reaction``: ids in ``reaction_ids``;
  ``yield_control()`` gives C^v_product - C^v_substrate.

Saved with ``ControlCoefficients.save(dir)`` / ``load_control_coefficients(dir)``. Nonlinear
checks use :func:`solve_steady_state` (Vmax fold changes, moieties kept) and
:func:`simulate_batch` (batch reactor: biomass, substrate, product titer).
"""

from mpc_bio.nomad.conservation import ConservationAnalysis, analyse_conservation
from mpc_bio.nomad.dynamics import (
    BatchSimulation,
    SteadyStateSolution,
    simulate_batch,
    simulate_relaxation,
    solve_steady_state,
)
from mpc_bio.nomad.ensemble import KineticEnsemble, load_ensemble, sample_ensemble
from mpc_bio.nomad.executor import run_chunks
from mpc_bio.nomad.kinetics import KineticFunctions, evaluate_rate_jacobian, evaluate_rates, kinetic_functions
from mpc_bio.nomad.mca import (
    ControlCoefficients,
    LinearAnalysis,
    compute_control_coefficients,
    compute_control_coefficients_parallel,
    linearize_ensemble,
    load_control_coefficients,
    reduced_jacobian,
)
from mpc_bio.nomad.network import (
    SHIKIMATE_BRANCH,
    KineticNetwork,
    NetworkError,
    anthranilate_model,
    build_network,
    ich360_anthranilate_model,
)
from mpc_bio.nomad.screening import (
    ScreeningResult,
    StageStatistics,
    screen_ensemble,
    screen_linear_stability,
    screen_nonlinear_return,
    screen_robustness,
    screen_time_constants,
)
from mpc_bio.nomad.settings import (
    EnsembleStudySettings,
    ExecutorSettings,
    NetworkSettings,
    SamplingSettings,
    ScreeningSettings,
    SteadyStateSettings,
    load_study_settings,
)
from mpc_bio.nomad.steady_state import ReferenceStates, ThermodynamicData, load_dg0, sample_reference_states
from mpc_bio.nomad.study import EnsembleStudy, run_ensemble_study, write_ensemble_study

#: Design-stage names (NRA, ranking, verification) -> module; imported on first access.
_DESIGN_API = {
    "NRASettings": "mpc_bio.nomad.nra_settings",
    "RankingSettings": "mpc_bio.nomad.nra_settings",
    "VerificationSettings": "mpc_bio.nomad.nra_settings",
    "SensitivitySettings": "mpc_bio.nomad.nra_settings",
    "DesignStudySettings": "mpc_bio.nomad.nra_settings",
    "NRAProblem": "mpc_bio.nomad.nra",
    "nra_problems_from_control_coefficients": "mpc_bio.nomad.nra",
    "solve_nra": "mpc_bio.nomad.nra",
    "enumerate_designs": "mpc_bio.nomad.nra",
    "check_design": "mpc_bio.nomad.nra",
    "rank_designs": "mpc_bio.nomad.ranking",
    "enumerate_ensemble_designs": "mpc_bio.nomad.ranking",
    "unique_designs": "mpc_bio.nomad.ranking",
    "mca_baseline": "mpc_bio.nomad.ranking",
    "FeedProfile": "mpc_bio.nomad.verification",
    "simulate_reactor": "mpc_bio.nomad.verification",
    "verify_strains": "mpc_bio.nomad.verification",
    "expression_sensitivity": "mpc_bio.nomad.verification",
    "run_design_study": "mpc_bio.nomad.design_cli",
    "write_design_study": "mpc_bio.nomad.design_cli",
}

__all__ = [
    "SHIKIMATE_BRANCH",
    "BatchSimulation",
    "ConservationAnalysis",
    "ControlCoefficients",
    "EnsembleStudy",
    "EnsembleStudySettings",
    "ExecutorSettings",
    "KineticEnsemble",
    "KineticFunctions",
    "KineticNetwork",
    "LinearAnalysis",
    "NetworkError",
    "NetworkSettings",
    "ReferenceStates",
    "SamplingSettings",
    "ScreeningResult",
    "ScreeningSettings",
    "StageStatistics",
    "SteadyStateSettings",
    "SteadyStateSolution",
    "ThermodynamicData",
    "analyse_conservation",
    "anthranilate_model",
    "build_network",
    "compute_control_coefficients",
    "compute_control_coefficients_parallel",
    "evaluate_rate_jacobian",
    "evaluate_rates",
    "ich360_anthranilate_model",
    "kinetic_functions",
    "linearize_ensemble",
    "load_control_coefficients",
    "load_dg0",
    "load_ensemble",
    "load_study_settings",
    "reduced_jacobian",
    "run_chunks",
    "run_ensemble_study",
    "sample_ensemble",
    "sample_reference_states",
    "screen_ensemble",
    "screen_linear_stability",
    "screen_nonlinear_return",
    "screen_robustness",
    "screen_time_constants",
    "simulate_batch",
    "simulate_relaxation",
    "solve_steady_state",
    "write_ensemble_study",
    # design stage (NRA, ranking, verification); loaded lazily because it imports Pyomo
    *_DESIGN_API,
]


def __getattr__(name: str):
    """Load the design-stage API (Pyomo-based) on first use, so the ensemble stage stays light."""
    module = _DESIGN_API.get(name)
    if module is None:
        raise AttributeError(f"module 'mpc_bio.nomad' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
