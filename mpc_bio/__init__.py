"""mpc_bio: genome-scale metabolism inside bioprocess control.

Stages (import direction): metabolism -> surrogate -> embed -> process -> control -> scenarios;
``nomad`` depends on metabolism only; ``codesign`` joins nomad and control.
Heavy dependencies (torch, l4casadi, do-mpc, pyomo) are imported only inside the stages that
need them, so ``import mpc_bio`` stays light.
"""

from typing import Any

from mpc_bio.errors import MpcBioError

__version__ = "0.1.0"

__all__ = ["FluxDataset", "MpcBioError", "load_model", "model_hash", "__version__"]


def __getattr__(name: str) -> Any:
    """``FluxDataset``, ``load_model`` and ``model_hash`` from :mod:`mpc_bio.metabolism`, on first use."""
    if name in ("FluxDataset", "load_model", "model_hash"):
        from mpc_bio import metabolism

        return getattr(metabolism, name)
    raise AttributeError(f"module 'mpc_bio' has no attribute {name!r}")
