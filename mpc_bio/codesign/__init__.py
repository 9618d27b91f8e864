"""Strain-plus-process co-design: NRA designs x feed profiles over a kinetic ensemble.

    study = run_codesign_study(CodesignSettings(), ensemble_settings, design_settings)
    study.table()        # titer, yield, productivity, growth per strain x feed (mean, spread)
    study.summary()      # best strain-plus-feed pair and its margin over the reference

``mpc-bio run scenarios/codesign_anthranilate.toml`` runs it from a scenario file.
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

#: Public name -> module, imported on first use (CasADi, cobra and Pyomo load only when needed).
_LAZY = {
    "cached_entry": "mpc_bio.codesign.cache",
    "config_hash": "mpc_bio.codesign.cache",
    "collocation_times": "mpc_bio.codesign.collocation",
    "optimize_feed_collocation": "mpc_bio.codesign.collocation",
    "TopDesigns": "mpc_bio.codesign.designs",
    "ensemble_key": "mpc_bio.codesign.designs",
    "load_or_run_designs": "mpc_bio.codesign.designs",
    "load_or_run_ensemble": "mpc_bio.codesign.designs",
    "batch_problem": "mpc_bio.codesign.feed",
    "optimize_feed": "mpc_bio.codesign.feed",
    "KineticControlModel": "mpc_bio.codesign.model",
    "kinetic_control_model": "mpc_bio.codesign.model",
    "FeedOptimum": "mpc_bio.codesign.optimum",
    "interval_profile": "mpc_bio.codesign.optimum",
    "member_objective": "mpc_bio.codesign.optimum",
    "CodesignSettings": "mpc_bio.codesign.settings",
    "FeedSettings": "mpc_bio.codesign.settings",
    "optimize_robust_feed": "mpc_bio.codesign.shooting",
    "feasible_start": "mpc_bio.codesign.simulation",
    "shooting_nodes": "mpc_bio.codesign.simulation",
    "simulate_product_amounts": "mpc_bio.codesign.simulation",
    "simulate_states": "mpc_bio.codesign.simulation",
    "CodesignEvaluation": "mpc_bio.codesign.study",
    "CodesignStudy": "mpc_bio.codesign.study",
    "load_codesign_config": "mpc_bio.codesign.study",
    "run_codesign_scenario": "mpc_bio.codesign.study",
    "run_codesign_study": "mpc_bio.codesign.study",
    "write_codesign_study": "mpc_bio.codesign.study",
}

__all__ = [
    "CodesignEvaluation",
    "CodesignSettings",
    "CodesignStudy",
    "FeedOptimum",
    "FeedSettings",
    "KineticControlModel",
    "TopDesigns",
    "batch_problem",
    "cached_entry",
    "collocation_times",
    "config_hash",
    "ensemble_key",
    "feasible_start",
    "interval_profile",
    "kinetic_control_model",
    "load_codesign_config",
    "load_or_run_designs",
    "load_or_run_ensemble",
    "member_objective",
    "optimize_feed",
    "optimize_feed_collocation",
    "optimize_robust_feed",
    "run_codesign_scenario",
    "run_codesign_study",
    "shooting_nodes",
    "simulate_product_amounts",
    "simulate_states",
    "write_codesign_study",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
