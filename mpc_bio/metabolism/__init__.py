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
    ".dataset": ("STATUS_CODES", "DatasetError", "FluxDataset"),
    ".models": ("BUNDLED_MODELS", "ICH360_DIR", "ModelLoadError", "find_ich360", "ich360_gibbs_energy_files", "load_model", "model_hash"),
    ".pfba": ("STATUS_NAMES", "InputError", "PFBAPoint", "PFBAProblem", "PFBASolver", "build_problem"),
    ".refinement": ("RefinementResult", "RefineSettings", "extend_dataset", "refine_cells", "refine_dataset"),
    ".sampling": (
        "DEFAULT_CHUNK_SIZE",
        "PAPER_GRID",
        "SamplePoints",
        "SamplingError",
        "grid_points",
        "latin_hypercube_points",
        "sample_pfba",
        "serpentine_order",
    ),
    ".settings": ("DEFAULT_INPUTS", "PFBASettings", "SettingsError"),
    ".switches": ("fit_hyperplane", "switch_points"),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
__all__ = __dir__()
