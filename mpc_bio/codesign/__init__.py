"""Strain-plus-process co-design (DESIGN.md §7): NRA designs x feed profiles over a kinetic ensemble.

    study = run_codesign_study(CodesignSettings(), ensemble_settings, design_settings)
    study.table()        # titer, yield, productivity, growth per strain x feed (mean, spread)
    study.summary()      # best strain-plus-feed pair and its margin over the reference

``mpc-bio run scenarios/codesign_anthranilate.toml`` runs it from a scenario file.
"""

from mpc_bio.codesign.cache import cached_entry, config_hash
from mpc_bio.codesign.collocation import collocation_times, optimize_feed_collocation
from mpc_bio.codesign.designs import TopDesigns, ensemble_key, load_or_run_designs, load_or_run_ensemble
from mpc_bio.codesign.feed import (
    FeedOptimum,
    batch_problem,
    feasible_start,
    optimize_feed,
    optimize_robust_feed,
    simulate_product_amounts,
    simulate_states,
)
from mpc_bio.codesign.model import KineticControlModel, kinetic_control_model
from mpc_bio.codesign.settings import CodesignSettings, FeedSettings
from mpc_bio.codesign.study import (
    CodesignEvaluation,
    CodesignStudy,
    load_codesign_config,
    run_codesign_scenario,
    run_codesign_study,
    write_codesign_study,
)

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
    "kinetic_control_model",
    "load_codesign_config",
    "load_or_run_designs",
    "load_or_run_ensemble",
    "optimize_feed",
    "optimize_feed_collocation",
    "optimize_robust_feed",
    "run_codesign_scenario",
    "run_codesign_study",
    "simulate_product_amounts",
    "simulate_states",
    "write_codesign_study",
]
