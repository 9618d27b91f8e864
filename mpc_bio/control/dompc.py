"""do-mpc without its import-time and set-up noise.

do-mpc 5.1.2 warns at import that its optional ONNX and OPC UA features are not installed, and its
``MPC.setup``/``MHE.setup`` call numpy functions on CasADi values, which CasADi 3.8 answers with a
``FutureWarning`` about legacy behaviour (the result is correct: numeric inputs). Neither concerns
mpc_bio's users, so both are silenced here, locally, and nothing else is.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from types import ModuleType

__all__ = ["quiet_do_mpc", "import_do_mpc"]


@contextlib.contextmanager
def quiet_do_mpc() -> Iterator[None]:
    """Context in which do-mpc's optional-feature and CasADi numpy-dispatch warnings are ignored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The (ONNX|opcua) feature is not available", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"\s*casadi: a numpy function was called on a casadi value", category=FutureWarning)
        yield


def import_do_mpc() -> ModuleType:
    """``import do_mpc`` inside :func:`quiet_do_mpc`."""
    with quiet_do_mpc():
        import do_mpc
    return do_mpc
