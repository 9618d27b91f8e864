"""mpc_bio: genome-scale metabolism inside bioprocess control.

Stages (import direction): metabolism -> surrogate -> embed -> process -> control -> scenarios;
``nomad`` depends on metabolism only; ``codesign`` joins nomad and control.
Heavy dependencies (torch, l4casadi, do-mpc, pyomo) are imported only inside the stages that
need them, so ``import mpc_bio`` stays light.
"""

from mpc_bio.errors import MpcBioError
from mpc_bio.metabolism.dataset import FluxDataset
from mpc_bio.metabolism.models import load_model, model_hash

__version__ = "0.1.0"

__all__ = ["FluxDataset", "MpcBioError", "load_model", "model_hash", "__version__"]
