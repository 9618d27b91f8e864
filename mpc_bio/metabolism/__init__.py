"""Metabolism: model loading, split-flux pFBA with slack relaxation, fast sampling, FluxDataset.

Typical use::

    from mpc_bio.metabolism import load_model, PFBASolver, sample_pfba, grid_points, PAPER_GRID

    model = load_model("e_coli_core")
    point = PFBASolver(model).solve({"glucose": 10.0, "oxygen": 15.0})
    data = sample_pfba(model, grid_points(PAPER_GRID), n_workers=None)
    data.save("runs/sample")
"""

from mpc_bio.metabolism.dataset import STATUS_CODES, DatasetError, FluxDataset
from mpc_bio.metabolism.models import (
    BUNDLED_MODELS,
    ICH360_DIR,
    ModelLoadError,
    find_ich360,
    ich360_gibbs_energy_files,
    load_model,
    model_hash,
)
from mpc_bio.metabolism.pfba import STATUS_NAMES, InputError, PFBAPoint, PFBAProblem, PFBASolver, build_problem
from mpc_bio.metabolism.refinement import (
    RefinementResult,
    RefineSettings,
    extend_dataset,
    refine_cells,
    refine_dataset,
)
from mpc_bio.metabolism.sampling import (
    DEFAULT_CHUNK_SIZE,
    PAPER_GRID,
    SamplePoints,
    SamplingError,
    grid_points,
    latin_hypercube_points,
    sample_pfba,
    serpentine_order,
)
from mpc_bio.metabolism.settings import DEFAULT_INPUTS, PFBASettings, SettingsError
from mpc_bio.metabolism.switches import fit_hyperplane, switch_points

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_INPUTS",
    "DatasetError",
    "FluxDataset",
    "InputError",
    "ModelLoadError",
    "PAPER_GRID",
    "PFBAPoint",
    "PFBAProblem",
    "PFBASettings",
    "PFBASolver",
    "RefineSettings",
    "RefinementResult",
    "STATUS_CODES",
    "STATUS_NAMES",
    "SamplePoints",
    "SamplingError",
    "SettingsError",
    "build_problem",
    "extend_dataset",
    "find_ich360",
    "ich360_gibbs_energy_files",
    "ICH360_DIR",
    "fit_hyperplane",
    "grid_points",
    "latin_hypercube_points",
    "load_model",
    "model_hash",
    "refine_cells",
    "refine_dataset",
    "sample_pfba",
    "serpentine_order",
    "switch_points",
]
