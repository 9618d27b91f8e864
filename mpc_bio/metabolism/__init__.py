"""Metabolism: model loading, split-flux pFBA with slack relaxation, fast sampling, FluxDataset.

Typical use::

    from mpc_bio.metabolism import load_model, PFBASolver, sample_pfba, grid_points, PAPER_GRID

    model = load_model("e_coli_core")
    point = PFBASolver(model).solve({"glucose": 10.0, "oxygen": 15.0})
    data = sample_pfba(model, grid_points(PAPER_GRID), n_workers=None)
    data.save("runs/sample")

Names are imported when first used, so ``import mpc_bio.metabolism`` (and ``mpc-bio --help``)
stays light.
"""

from __future__ import annotations

from mpc_bio.lazy import lazy_exports

_LAZY = {
    "STATUS_CODES": ".dataset",
    "DatasetError": ".dataset",
    "FluxDataset": ".dataset",
    "BUNDLED_MODELS": ".models",
    "ICH360_DIR": ".models",
    "ModelLoadError": ".models",
    "find_ich360": ".models",
    "ich360_gibbs_energy_files": ".models",
    "load_model": ".models",
    "model_hash": ".models",
    "STATUS_NAMES": ".pfba",
    "InputError": ".pfba",
    "PFBAPoint": ".pfba",
    "PFBAProblem": ".pfba",
    "PFBASolver": ".pfba",
    "build_problem": ".pfba",
    "RefinementResult": ".refinement",
    "RefineSettings": ".refinement",
    "extend_dataset": ".refinement",
    "refine_cells": ".refinement",
    "refine_dataset": ".refinement",
    "DEFAULT_CHUNK_SIZE": ".sampling",
    "PAPER_GRID": ".sampling",
    "SamplePoints": ".sampling",
    "SamplingError": ".sampling",
    "grid_points": ".sampling",
    "latin_hypercube_points": ".sampling",
    "sample_pfba": ".sampling",
    "serpentine_order": ".sampling",
    "DEFAULT_INPUTS": ".settings",
    "PFBASettings": ".settings",
    "SettingsError": ".settings",
    "fit_hyperplane": ".switches",
    "switch_points": ".switches",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
