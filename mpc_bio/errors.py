"""The one error base class of mpc_bio.

Every error mpc_bio raises for bad input, settings, files or solver outcomes it can name is a
:class:`MpcBioError` (a ``ValueError``), through the stage's own subclass (``ModelLoadError``,
``ArtifactError``, ``ControlError``, ...). The command line turns any of them into one message and
exit code 2; code can catch them all at once.
"""

from __future__ import annotations

__all__ = ["MpcBioError"]


class MpcBioError(ValueError):
    """Base class of every error mpc_bio raises on purpose (bad input, settings, files, outcomes)."""
