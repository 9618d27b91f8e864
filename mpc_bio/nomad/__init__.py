"""NOMAD (Paper 2): kinetic-model ensembles, screening, metabolic control analysis and strain design.

Ensemble stage (this part):

    network  = build_network()                       # iCH360 trpD9923: core + shikimate, lumped growth
    states   = sample_reference_states(network)      # TFA: fluxes, concentrations, dG'0 -> Keq
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
:func:`simulate_batch` (the kinetic reactor of :mod:`mpc_bio.nomad.reactor` without feed: biomass,
substrate, product titer).
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

#: Ensemble-stage names -> module; imported on first access, so ``import mpc_bio.nomad`` (and
#: ``mpc-bio --help``) stays light.
_ENSEMBLE_API = {
    "ConservationAnalysis": "mpc_bio.nomad.conservation",
    "analyse_conservation": "mpc_bio.nomad.conservation",
    "SteadyStateSolution": "mpc_bio.nomad.dynamics",
    "simulate_relaxation": "mpc_bio.nomad.dynamics",
    "solve_steady_state": "mpc_bio.nomad.dynamics",
    "KineticEnsemble": "mpc_bio.nomad.ensemble",
    "load_ensemble": "mpc_bio.nomad.ensemble",
    "sample_ensemble": "mpc_bio.nomad.ensemble",
    "run_chunks": "mpc_bio.nomad.executor",
    "chunk_checkpoint": "mpc_bio.nomad.checkpoint",
    "KineticFunctions": "mpc_bio.nomad.kinetics",
    "evaluate_rate_jacobian": "mpc_bio.nomad.kinetics",
    "evaluate_rates": "mpc_bio.nomad.kinetics",
    "kinetic_functions": "mpc_bio.nomad.kinetics",
    "ControlCoefficients": "mpc_bio.nomad.mca",
    "LinearAnalysis": "mpc_bio.nomad.mca",
    "compute_control_coefficients": "mpc_bio.nomad.mca",
    "compute_control_coefficients_parallel": "mpc_bio.nomad.mca",
    "linearize_ensemble": "mpc_bio.nomad.mca",
    "load_control_coefficients": "mpc_bio.nomad.mca",
    "reduced_jacobian": "mpc_bio.nomad.mca",
    "SHIKIMATE_BRANCH": "mpc_bio.nomad.network",
    "KineticNetwork": "mpc_bio.nomad.network",
    "NetworkError": "mpc_bio.nomad.network",
    "anthranilate_model": "mpc_bio.nomad.network",
    "build_network": "mpc_bio.nomad.network",
    "ich360_anthranilate_model": "mpc_bio.nomad.network",
    "ReactorSimulation": "mpc_bio.nomad.reactor",
    "simulate_batch": "mpc_bio.nomad.reactor",
    "CORE_SUBSYSTEMS": "mpc_bio.nomad.reduction",
    "PAPER_TARGETS": "mpc_bio.nomad.reduction",
    "ReducedNetwork": "mpc_bio.nomad.reduction",
    "reduce_to_core": "mpc_bio.nomad.reduction",
    "AROG_FBR": "mpc_bio.nomad.regulation",
    "AROG_FBR_TKTA": "mpc_bio.nomad.regulation",
    "CENTRAL_REGULATIONS": "mpc_bio.nomad.regulation",
    "SHIKIMATE_REGULATIONS": "mpc_bio.nomad.regulation",
    "STRAINS": "mpc_bio.nomad.regulation",
    "StrainModification": "mpc_bio.nomad.regulation",
    "apply_strain": "mpc_bio.nomad.regulation",
    "ScreeningResult": "mpc_bio.nomad.screening",
    "StageStatistics": "mpc_bio.nomad.screening",
    "screen_ensemble": "mpc_bio.nomad.screening",
    "screen_batch_data": "mpc_bio.nomad.screening",
    "run_funnel": "mpc_bio.nomad.funnel",
    "FunnelResult": "mpc_bio.nomad.funnel",
    "load_fermentation_data": "mpc_bio.nomad.fermentation_data",
    "FermentationData": "mpc_bio.nomad.fermentation_data",
    "screen_linear_stability": "mpc_bio.nomad.screening",
    "screen_nonlinear_return": "mpc_bio.nomad.screening",
    "screen_robustness": "mpc_bio.nomad.screening",
    "screen_time_constants": "mpc_bio.nomad.screening",
    "EnsembleStudySettings": "mpc_bio.nomad.settings",
    "ExecutorSettings": "mpc_bio.nomad.settings",
    "NetworkSettings": "mpc_bio.nomad.settings",
    "NomadSettingsError": "mpc_bio.nomad.settings",
    "SamplingSettings": "mpc_bio.nomad.settings",
    "ScreeningSettings": "mpc_bio.nomad.settings",
    "SteadyStateSettings": "mpc_bio.nomad.settings",
    "load_study_settings": "mpc_bio.nomad.settings",
    "ReferenceStates": "mpc_bio.nomad.steady_state",
    "ThermodynamicData": "mpc_bio.nomad.steady_state",
    "load_dg0": "mpc_bio.nomad.steady_state",
    "cofactor_ratios": "mpc_bio.nomad.steady_state",
    "hit_and_run": "mpc_bio.nomad.steady_state",
    "sample_reference_states": "mpc_bio.nomad.steady_state",
    "EnsembleStudy": "mpc_bio.nomad.study",
    "run_ensemble_study": "mpc_bio.nomad.study",
    "write_ensemble_study": "mpc_bio.nomad.study",
}


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
    "FeedProfile": "mpc_bio.feed",
    "simulate_reactor": "mpc_bio.nomad.reactor",
    "verify_strains": "mpc_bio.nomad.verification",
    "strain_steady_state": "mpc_bio.nomad.viability",
    "expression_sensitivity": "mpc_bio.nomad.sensitivity",
    "expression_sensitivities": "mpc_bio.nomad.sensitivity",
    "run_design_study": "mpc_bio.nomad.design_study",
    "write_design_study": "mpc_bio.nomad.design_study",
}

__all__ = [
    "AROG_FBR",
    "AROG_FBR_TKTA",
    "CENTRAL_REGULATIONS",
    "CORE_SUBSYSTEMS",
    "PAPER_TARGETS",
    "SHIKIMATE_REGULATIONS",
    "STRAINS",
    "ReducedNetwork",
    "StrainModification",
    "apply_strain",
    "cofactor_ratios",
    "hit_and_run",
    "reduce_to_core",
    "SHIKIMATE_BRANCH",
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
    "NomadSettingsError",
    "ReactorSimulation",
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
    "chunk_checkpoint",
    "run_ensemble_study",
    "sample_ensemble",
    "sample_reference_states",
    "screen_ensemble",
    "screen_batch_data",
    "run_funnel",
    "FunnelResult",
    "load_fermentation_data",
    "FermentationData",
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

__getattr__, __dir__ = lazy_exports(__name__, _ENSEMBLE_API | _DESIGN_API)
