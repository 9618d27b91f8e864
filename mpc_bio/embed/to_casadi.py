"""``to_casadi``: a trained surrogate as a ``casadi.Function`` of the uptakes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import casadi as ca

from mpc_bio.errors import MpcBioError
from mpc_bio.embed.l4casadi_backend import L4CASADI_MODES, l4casadi_function
from mpc_bio.embed.native import native_function

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "EmbeddingError", "to_casadi", "select_outputs"]

#: Available backends.
BACKENDS = ("native", "l4casadi")

#: Chosen by measurement (benchmarks/process.py, 64x64 SiLU e_coli_core surrogate, 2 loaded
#: cores): value + Jacobian per call native MX ~25 us, native SX ~70 us, l4casadi ~100 us (torch
#: autograd ~600 us); exact-Hessian IPOPT fit 2-5x faster native; the 24 h fed-batch in CVODES
#: ~3x faster native; no 1-5 s build step, works in SX (do-mpc's faster models) and MX, exact
#: derivatives of any order, C code generation. l4casadi stays available for arbitrary torch
#: models and GPUs.
DEFAULT_BACKEND = "native"


class EmbeddingError(MpcBioError):
    """A surrogate cannot be embedded as asked (unknown outputs, backend or symbol type)."""


def select_outputs(surrogate, outputs: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Reaction ids and their column indices for ``outputs`` (all reactions when ``None``).

    Raises
    ------
    EmbeddingError
        If an id is not an output of the surrogate, or ids repeat.
    """
    ids = tuple(surrogate.reaction_ids)
    if outputs is None:
        return ids, tuple(range(len(ids)))
    if isinstance(outputs, str):
        outputs = (outputs,)
    outputs = tuple(outputs)
    missing = [o for o in outputs if o not in ids]
    if missing:
        raise EmbeddingError(
            f"The 'outputs' of to_casadi must be reaction ids of the surrogate; {missing} are not among its "
            f"{len(ids)} outputs (e.g. {list(ids[:5])})."
        )
    if len(set(outputs)) != len(outputs):
        raise EmbeddingError(f"The 'outputs' of to_casadi must not repeat; got {list(outputs)}.")
    if not outputs:
        raise EmbeddingError("The 'outputs' of to_casadi must name at least one reaction; got an empty list.")
    return outputs, tuple(ids.index(o) for o in outputs)


def to_casadi(
    surrogate,
    backend: str = DEFAULT_BACKEND,
    outputs: Sequence[str] | None = None,
    symbolic: str = "SX",
    *,
    name: str = "surrogate_fluxes",
    l4casadi_mode: str = "exact",
    build_dir: str | Path | None = None,
) -> ca.Function:
    """The surrogate's map from uptakes to net fluxes as a CasADi function.

    Parameters
    ----------
    surrogate : mpc_bio.surrogate.Surrogate
        Trained surrogate (``spec()``/``spec`` for the native backend, ``module`` for l4casadi).
    backend : {"native", "l4casadi"}
        ``"native"``: the MLP rebuilt as a CasADi graph (exact derivatives of any order, SX or
        MX, C code generation). ``"l4casadi"``: the torch module called through L4CasADi
        (MX only; see :mod:`mpc_bio.embed.l4casadi_backend` for its modes and limits).
    outputs : sequence of str, optional
        Reaction ids to return, in this order (default: all ``surrogate.reaction_ids``). Keep
        only what the reactor needs (growth, exchanges) in control models: it shrinks the graph.
    symbolic : {"SX", "MX"}
        Graph type of the native backend (ignored by l4casadi, which is always MX).
    name : str
        Name of the CasADi function.
    l4casadi_mode : {"exact", "jac_jac", "adjoint"}
        Derivative construction of the l4casadi backend.
    build_dir : path, optional
        Build directory of the l4casadi backend (default: a cache directory outside the repository).

    Returns
    -------
    casadi.Function
        ``f(uptakes[k]) -> fluxes[len(outputs)]``; uptakes in mmol/gDW/h in
        ``surrogate.input_names`` order, fluxes in mmol/gDW/h (growth in 1/h). The function does
        not check the training domain: use ``surrogate.in_domain`` (or
        :meth:`mpc_bio.process.CellFluxModel.in_domain`) on the inputs of a trajectory; the
        process simulators do and report an ``"out_of_domain"`` event.
    """
    if backend not in BACKENDS:
        raise EmbeddingError(f"The 'backend' parameter of to_casadi must be one of {BACKENDS}; got {backend!r}.")
    if symbolic not in ("SX", "MX"):
        raise EmbeddingError(f"The 'symbolic' parameter of to_casadi must be 'SX' or 'MX'; got {symbolic!r}.")
    if l4casadi_mode not in L4CASADI_MODES:
        raise EmbeddingError(f"The 'l4casadi_mode' parameter of to_casadi must be one of {L4CASADI_MODES}; got {l4casadi_mode!r}.")
    _, rows = select_outputs(surrogate, outputs)
    k = len(surrogate.input_names)
    if backend == "native":
        spec = surrogate.spec() if callable(getattr(surrogate, "spec", None)) else surrogate.spec
        return native_function(spec, rows, symbolic=symbolic, name=name)
    return l4casadi_function(surrogate.module, k, rows, mode=l4casadi_mode, name=name, build_dir=build_dir)
