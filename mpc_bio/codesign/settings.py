"""Settings of the co-design study (``kind = "codesign"`` scenarios, ``[codesign]`` tables).

The ensemble and the NRA designs come from the ``[nomad]`` tables of the same scenario file
(:class:`~mpc_bio.nomad.settings.EnsembleStudySettings`,
:class:`~mpc_bio.nomad.nra_settings.DesignStudySettings`); the reactor (batch time, inoculum,
initial glucose, feed concentration, reference feed) is ``[nomad.design.verification]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

__all__ = ["FeedSettings", "CodesignSettings"]

ROBUST_MODES = ("mean", "worst")
METHODS = ("shooting", "collocation")
COLLOCATION_STARTS = ("initial", "shooting", "both")


def _unknown(cls: type, data: Mapping[str, Any], table: str) -> None:
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"Unknown key(s) {extra} in [{table}]; expected a subset of {sorted(known)}.")


def _pos(owner: str, name: str, value: Any, *, zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        raise ValueError(f"The '{name}' parameter of {owner} must be a finite number {'>= 0' if zero else '> 0'}. Got {value!r} instead.")


def _int(owner: str, name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter of {owner} must be an integer >= {low}. Got {value!r} instead.")


@dataclass(frozen=True)
class FeedSettings:
    """Feed optimisation on the kinetic fed-batch (``[codesign.feed]``).

    Attributes
    ----------
    n_intervals : int
        Piecewise-constant feed intervals over the batch [-].
    feed_min_l_per_h : float
        Lower feed bound [L/h].
    feed_max_l_per_h : float
        Upper feed bound [L/h].
    volume_max_l : float
        Largest reactor volume [L], hard.
    glucose_max_mmol_per_l : float
        Largest medium glucose concentration [mmol/L], hard at every check time and member.
    constraint_points : int
        Check times of the glucose limit per feed interval in shooting (equally spaced, the end included) [-].
    robust : str
        "mean" (mean final product amount over the members) or "worst" (smallest) [-].
    n_members : int
        Ensemble members stacked in one NLP (the first NRA models in which the strain exists) [-].
    method : str
        How the shared and the strain feeds are optimised: "shooting" (CVODES single shooting,
        finite-difference derivatives) or "collocation" (Radau direct collocation, states in
        linear scale bounded by 0, exact Hessian; :mod:`mpc_bio.codesign.collocation`).
    collocation_deg : int
        Radau points per finite element (``method = "collocation"``) [-].
    elements_per_interval : int
        Finite elements per feed interval (``method = "collocation"``) [-].
    collocation_glucose_tolerance : float
        Relative excess of the glucose limit tolerated when the collocation optimum is
        re-simulated by CVODES at the collocation points (-); beyond it the start feed is kept.
    collocation_start : str
        Where the collocation NLP starts (``method = "collocation"``): "initial" (the CVODES
        trajectory of the initial feed), "shooting" (single shooting first, then collocation
        from the shooting optimum's trajectory; the better CVODES-verified feed is kept) or
        "both" (shooting, collocation from the initial feed and collocation from the shooting
        optimum; the best verified feed is kept) [-].
    reoptimize : bool
        Re-optimise the feed for each top design (False: only the shared feed).
    max_iter : int
        IPOPT iteration limit [-].
    tol : float
        IPOPT tolerance (scaled objective) [-].
    reltol : float
        CVODES relative tolerance [-].
    abstol : float
        CVODES absolute tolerance (state units: mmol, gDW, L) [state units].
    fd_step : float
        Forward finite-difference step of the objective and constraint derivatives, in the feed
        scaled by ``feed_max_l_per_h`` (-).
    batch_time_h : float or None
        Batch length [h]; None takes ``t_end_h`` of ``[nomad.design.verification]``.
    """

    n_intervals: int = 8
    feed_min_l_per_h: float = 0.0
    feed_max_l_per_h: float = 0.1
    volume_max_l: float = 1.5
    glucose_max_mmol_per_l: float = 50.0
    constraint_points: int = 4
    robust: str = "mean"
    n_members: int = 3
    method: str = "shooting"
    collocation_deg: int = 3
    elements_per_interval: int = 4
    collocation_glucose_tolerance: float = 0.02
    collocation_start: str = "both"
    reoptimize: bool = True
    max_iter: int = 60
    tol: float = 1e-5
    reltol: float = 1e-10
    abstol: float = 1e-12
    fd_step: float = 1e-5
    batch_time_h: float | None = None

    def __post_init__(self) -> None:
        owner = "FeedSettings"
        _int(owner, "n_intervals", self.n_intervals, 1)
        _pos(owner, "feed_min_l_per_h", self.feed_min_l_per_h, zero=True)
        _pos(owner, "feed_max_l_per_h", self.feed_max_l_per_h)
        if self.feed_max_l_per_h <= self.feed_min_l_per_h:
            raise ValueError(
                f"The 'feed_max_l_per_h' parameter of {owner} must exceed feed_min_l_per_h={self.feed_min_l_per_h}. "
                f"Got {self.feed_max_l_per_h!r} instead."
            )
        _pos(owner, "volume_max_l", self.volume_max_l)
        _pos(owner, "glucose_max_mmol_per_l", self.glucose_max_mmol_per_l)
        if self.robust not in ROBUST_MODES:
            raise ValueError(f"The 'robust' parameter of {owner} must be one of {ROBUST_MODES}. Got {self.robust!r} instead.")
        if self.method not in METHODS:
            raise ValueError(f"The 'method' parameter of {owner} must be one of {METHODS}. Got {self.method!r} instead.")
        _int(owner, "n_members", self.n_members, 1)
        _int(owner, "constraint_points", self.constraint_points, 1)
        _int(owner, "collocation_deg", self.collocation_deg, 1)
        _int(owner, "elements_per_interval", self.elements_per_interval, 1)
        _pos(owner, "collocation_glucose_tolerance", self.collocation_glucose_tolerance, zero=True)
        if self.collocation_deg > 5:
            raise ValueError(f"The 'collocation_deg' parameter of {owner} must be in 1..5. Got {self.collocation_deg!r} instead.")
        if self.collocation_start not in COLLOCATION_STARTS:
            raise ValueError(
                f"The 'collocation_start' parameter of {owner} must be one of {COLLOCATION_STARTS}. Got {self.collocation_start!r} instead.")
        if not isinstance(self.reoptimize, bool):
            raise ValueError(f"The 'reoptimize' parameter of {owner} must be true or false. Got {self.reoptimize!r} instead.")
        _int(owner, "max_iter", self.max_iter, 1)
        for name in ("tol", "reltol", "abstol", "fd_step"):
            _pos(owner, name, getattr(self, name))
        if self.batch_time_h is not None:
            _pos(owner, "batch_time_h", self.batch_time_h)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeedSettings":
        """Build from the ``[codesign.feed]`` table; unknown keys raise."""
        _unknown(cls, data, "codesign.feed")
        return cls(**data)


@dataclass(frozen=True)
class CodesignSettings:
    """The co-design study (``[codesign]``).

    Attributes
    ----------
    n_designs : int
        Top-ranked NRA designs carried into the co-design (fewer if fewer exist) [-].
    n_points : int
        Output time points of each simulation (including t = 0) [-].
    cache_dir : str
        Directory of the cached ensemble and design results (keyed by a hash of their settings).
    reuse_nomad_output : bool
        Reuse the ensemble stage's output (``output_dir`` of the nomad table) when its recorded
        settings equal this file's (else the cache, else run the stage).
    show_progress : bool
        tqdm progress bars.
    figures : bool
        Write PNG figures.
    feed : FeedSettings
    """

    n_designs: int = 3
    n_points: int = 33
    cache_dir: str = "runs/cache/codesign"
    reuse_nomad_output: bool = True
    show_progress: bool = True
    figures: bool = True
    feed: FeedSettings = field(default_factory=FeedSettings)

    def __post_init__(self) -> None:
        owner = "CodesignSettings"
        _int(owner, "n_designs", self.n_designs, 0)
        _int(owner, "n_points", self.n_points, 2)
        if not isinstance(self.cache_dir, str) or not self.cache_dir:
            raise ValueError(f"The 'cache_dir' parameter of {owner} must be a non-empty path string. Got {self.cache_dir!r} instead.")
        for name in ("reuse_nomad_output", "show_progress", "figures"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"The '{name}' parameter of {owner} must be true or false. Got {getattr(self, name)!r} instead.")
        if not isinstance(self.feed, FeedSettings):
            raise ValueError(f"The 'feed' parameter of {owner} must be a FeedSettings. Got {type(self.feed).__name__} instead.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CodesignSettings":
        """Build from the ``[codesign]`` table (sub-table ``feed``); unknown keys raise."""
        _unknown(cls, data, "codesign")
        kw = dict(data)
        if "feed" in kw:
            if not isinstance(kw["feed"], Mapping):
                raise ValueError(f"[codesign.feed] must be a table. Got {kw['feed']!r} instead.")
            kw["feed"] = FeedSettings.from_dict(kw["feed"])
        return cls(**kw)
