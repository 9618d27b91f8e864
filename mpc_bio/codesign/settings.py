"""Settings of the co-design study (``kind = "codesign"`` scenarios, ``[codesign]`` tables).

The ensemble and the NRA designs come from the ``[nomad]`` tables of the same scenario file
(:class:`~mpc_bio.nomad.settings.EnsembleStudySettings`,
:class:`~mpc_bio.nomad.nra_settings.DesignStudySettings`); the reactor (batch time, inoculum,
initial glucose, feed concentration, reference feed) is ``[nomad.design.verification]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.settings import POSITIVE, Settings, setting

__all__ = ["FeedSettings", "CodesignSettings", "CodesignError"]

ROBUST_MODES = ("mean", "worst")
METHODS = ("shooting", "collocation")
COLLOCATION_STARTS = ("initial", "shooting", "both")


class CodesignError(MpcBioError):
    """A co-design setting has the wrong type or lies outside its range."""


@dataclass(frozen=True)
class FeedSettings(Settings):
    """Feed optimisation on the kinetic fed-batch (``[codesign.feed]``); each field is documented
    where it is declared."""

    error: ClassVar[type] = CodesignError
    renamed: ClassVar[dict[str, str]] = {
        "feed_min_l_per_h": "feed_min",
        "feed_max_l_per_h": "feed_max",
        "volume_max_l": "volume_max",
        "glucose_max_mmol_per_l": "glucose_max",
        "batch_time_h": "batch_time",
    }

    n_intervals: int = setting(8, low=1, unit="-", doc="Piecewise-constant feed intervals over the batch.")
    feed_min: float = setting(0.0, low=0.0, unit="L/h", doc="Lower feed bound.")
    feed_max: float = setting(0.1, **POSITIVE, unit="L/h", doc="Upper feed bound.")
    volume_max: float = setting(1.5, **POSITIVE, unit="L", doc="Largest reactor volume, hard.")
    glucose_max: float = setting(
        50.0, **POSITIVE, unit="mmol/L", doc=("Largest medium glucose concentration, hard at every check time and member.")
    )
    constraint_points: int = setting(
        4, low=1, unit="-", doc=("Check times of the glucose limit per feed interval in shooting (equally spaced, the end included).")
    )
    robust: str = setting(
        "mean", choices=ROBUST_MODES, unit="-", doc=('"mean" (mean final product amount over the members) or "worst" (smallest).')
    )
    n_members: int = setting(
        3, low=1, unit="-", doc=("Ensemble members stacked in one NLP (the first NRA models in which the strain exists).")
    )
    method: str = setting(
        "shooting",
        choices=METHODS,
        unit="-",
        doc=(
            'How the shared and the strain feeds are optimised: "shooting" (CVODES single shooting, '
            'finite-difference derivatives) or "collocation" (Radau direct collocation, states in linear scale '
            "bounded by 0, exact Hessian; mpc_bio.codesign.collocation)."
        ),
    )
    collocation_deg: int = setting(3, low=1, high=5, unit="-", doc='Radau points per finite element (method = "collocation").')
    elements_per_interval: int = setting(4, low=1, unit="-", doc='Finite elements per feed interval (method = "collocation").')
    collocation_glucose_tolerance: float = setting(
        0.02,
        low=0.0,
        unit="-",
        doc=(
            "Relative excess of the glucose limit tolerated when the collocation optimum is re-simulated by CVODES at "
            "the collocation points; beyond it the start feed is kept."
        ),
    )
    collocation_start: str = setting(
        "both",
        choices=COLLOCATION_STARTS,
        unit="-",
        doc=(
            'Where the collocation NLP starts (method = "collocation"): "initial" (the CVODES trajectory of the '
            'initial feed), "shooting" (single shooting first, then collocation from the shooting optimum\'s '
            'trajectory; the better CVODES-verified feed is kept) or "both" (shooting, collocation from the initial '
            "feed and collocation from the shooting optimum; the best verified feed is kept)."
        ),
    )
    reoptimize: bool = setting(True, doc="Re-optimise the feed for each top design (False: only the shared feed).")
    max_iter: int = setting(60, low=1, unit="-", doc="IPOPT iteration limit.")
    tol: float = setting(1e-5, **POSITIVE, unit="-", doc="IPOPT tolerance (scaled objective).")
    reltol: float = setting(1e-10, **POSITIVE, unit="-", doc="CVODES relative tolerance.")
    abstol: float = setting(1e-12, **POSITIVE, unit="state units", doc="CVODES absolute tolerance (state units: mmol, gDW, L).")
    fd_step: float = setting(
        1e-5,
        **POSITIVE,
        unit="-",
        doc=("Forward finite-difference step of the objective and constraint derivatives, in the feed scaled by feed_max."),
    )
    batch_time: float | None = setting(None, **POSITIVE, unit="h", doc=("Batch length; default batch_time of [nomad.design.verification]."))

    def _check(self) -> None:
        if self.feed_max <= self.feed_min:
            raise self.invalid("feed_max", f"> feed_min = {self.feed_min}", self.feed_max)


@dataclass(frozen=True)
class CodesignSettings(Settings):
    """The co-design study (``[codesign]``); each field is documented where it is declared."""

    error: ClassVar[type] = CodesignError
    renamed: ClassVar[dict[str, str]] = {"show_progress": "progress"}

    n_designs: int = setting(3, low=0, unit="-", doc="Top-ranked NRA designs carried into the co-design (fewer if fewer exist).")
    n_points: int = setting(33, low=2, unit="-", doc="Output time points of each simulation (including t = 0).")
    cache_dir: str = setting(
        "runs/cache/codesign",
        doc=("Cached ensemble and design results, keyed by a hash of their settings (relative to the working directory)."),
    )
    reuse_nomad_output: bool = setting(
        True,
        doc=(
            "Reuse the ensemble stage's output (output_dir of the nomad table) when its recorded settings equal this "
            "file's (else the cache, else run the stage)."
        ),
    )
    progress: bool = setting(True, doc="Show progress bars.")
    figures: bool = setting(True, doc="Write PNG figures.")
    feed: FeedSettings = setting(
        factory=FeedSettings, doc=("[codesign.feed] shared and strain-specific feed optimisation on the kinetic fed-batch.")
    )
