"""Embedding a trained surrogate into CasADi: native graph and l4casadi backends.

torch and l4casadi are imported only here and in :mod:`mpc_bio.surrogate`.
"""

from mpc_bio.embed.batched import BatchedNetwork, TaylorCoefficients, batched_casadi_function, torch_device, torch_threads
from mpc_bio.embed.l4casadi_backend import L4CASADI_MODES, default_build_dir, l4casadi_function
from mpc_bio.embed.native import casadi_activation, folded_layers, native_function
from mpc_bio.embed.to_casadi import BACKENDS, DEFAULT_BACKEND, EmbeddingError, select_outputs, to_casadi

__all__ = [
    "to_casadi",
    "select_outputs",
    "EmbeddingError",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "L4CASADI_MODES",
    "native_function",
    "folded_layers",
    "casadi_activation",
    "l4casadi_function",
    "default_build_dir",
    "BatchedNetwork",
    "TaylorCoefficients",
    "batched_casadi_function",
    "torch_threads",
    "torch_device",
]
