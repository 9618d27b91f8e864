"""The result of a feed optimisation and the objective it maximises over ensemble members."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mpc_bio.feed import FeedProfile

if TYPE_CHECKING:
    from mpc_bio.codesign.model import KineticControlModel
    from mpc_bio.codesign.settings import FeedSettings

__all__ = ["FeedOptimum", "feed_optimum_from_dict", "interval_profile", "member_objective", "robust_mode"]


@dataclass(frozen=True, eq=False)
class FeedOptimum:
    """An optimised piecewise-constant feed.

    Attributes
    ----------
    strain : str
        Label of the strain it was optimised for.
    mode : str
        "mean" or "worst" (over ``members``).
    method : str
        "shooting" or "collocation".
    profile : FeedProfile
        The feed: rate (L/h) per interval from the interval's start time (h); its glucose
        concentration is :attr:`feed_glucose`, which the reactor settings of the
        study share (``VerificationSettings.feed_glucose``).
    batch_time : float
        End of the last interval (h).
    objective : float
        Mean or worst-case final product amount over the members (mmol), from CVODES.
    member_product_mmol : ndarray (n_members,)
        Final product amount per member under this feed (mmol).
    initial_objective : float
        The same objective under the initial guess (mmol).
    members : tuple of int
        Ensemble indices of the members.
    status : str
        IPOPT return status.
    success : bool
    iterations : int
    solve_time_s : float
        Wall time of the optimisation (s).
    feed_glucose : float
        Feed substrate concentration (mM).
    nlp_objective : float
        The objective as the NLP saw it (mmol): for collocation the discretised value, for
        shooting the CVODES value (NaN when the start was kept).
    simulation_mismatch : float
        Largest relative gap over the members between the NLP's final product amounts and the
        CVODES re-simulation of the returned feed (-); 0 up to integrator tolerance for shooting.
    """

    strain: str
    mode: str
    method: str
    profile: FeedProfile
    batch_time: float
    objective: float
    member_product_mmol: np.ndarray
    initial_objective: float
    members: tuple[int, ...]
    status: str
    success: bool
    iterations: int
    solve_time_s: float
    feed_glucose: float
    nlp_objective: float = float("nan")
    simulation_mismatch: float = float("nan")

    @classmethod
    def solved(
        cls,
        km: KineticControlModel,
        settings: FeedSettings,
        method: str,
        strain: str,
        mode: str,
        stats: dict,
        started: float,
        feed: np.ndarray,
        products: np.ndarray,
        initial_objective: float,
        status: str,
        nlp_objective: float,
        simulation_mismatch: float,
    ) -> FeedOptimum:
        """The optimum of one IPOPT solve (``stats`` its stats, ``started`` the ``time.perf_counter()``
        of the optimisation's start, s) on ``km``: ``feed`` one rate per interval of the settings'
        batch (L/h), ``products`` the members' final product amounts under it (mmol); the other
        arguments are stored as they are."""
        return cls(
            strain=strain,
            mode=mode,
            method=method,
            profile=interval_profile(settings.batch_time, feed),
            batch_time=settings.batch_time,
            objective=member_objective(products, mode),
            member_product_mmol=products,
            initial_objective=initial_objective,
            members=km.members,
            status=status,
            success=bool(stats.get("success")),
            iterations=int(stats.get("iter_count", -1)),
            solve_time_s=time.perf_counter() - started,
            feed_glucose=km.feed_glucose,
            nlp_objective=nlp_objective,
            simulation_mismatch=simulation_mismatch,
        )

    @property
    def edges(self) -> np.ndarray:
        """Interval edges (n+1,), h: the profile's switching times and the batch end."""
        return np.append(self.profile.times, self.batch_time)

    @property
    def feed(self) -> np.ndarray:
        """Feed rate per interval (n,), L/h."""
        return np.array(self.profile.rates)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "strain": self.strain,
            "mode": self.mode,
            "method": self.method,
            "edges_h": self.edges.tolist(),
            "feed_l_per_h": self.feed.tolist(),
            "objective_mmol": self.objective,
            "initial_objective_mmol": self.initial_objective,
            "member_product_mmol": self.member_product_mmol.tolist(),
            "members": list(self.members),
            "status": self.status,
            "success": self.success,
            "iterations": self.iterations,
            "solve_time_s": self.solve_time_s,
            "feed_glucose": self.feed_glucose,
            "nlp_objective_mmol": self.nlp_objective,
            "simulation_mismatch": self.simulation_mismatch,
        }


def feed_optimum_from_dict(d: dict) -> FeedOptimum:
    """The :class:`FeedOptimum` written by :meth:`FeedOptimum.to_dict` (the co-design cache)."""
    edges = [float(t) for t in d["edges_h"]]
    return FeedOptimum(
        strain=d["strain"],
        mode=d["mode"],
        method=d["method"],
        profile=FeedProfile(times=tuple(edges[:-1]), rates=tuple(float(f) for f in d["feed_l_per_h"])),
        batch_time=edges[-1],
        objective=float(d["objective_mmol"]),
        member_product_mmol=np.asarray(d["member_product_mmol"], dtype=float),
        initial_objective=float(d["initial_objective_mmol"]),
        members=tuple(int(m) for m in d["members"]),
        status=d["status"],
        success=bool(d["success"]),
        iterations=int(d["iterations"]),
        solve_time_s=float(d["solve_time_s"]),
        feed_glucose=float(d["feed_glucose"]),
        nlp_objective=float("nan") if d["nlp_objective_mmol"] is None else float(d["nlp_objective_mmol"]),
        simulation_mismatch=float("nan") if d["simulation_mismatch"] is None else float(d["simulation_mismatch"]),
    )


def interval_profile(batch_time: float, feed) -> FeedProfile:
    """The :class:`~mpc_bio.feed.FeedProfile` of rates ``feed`` (L/h) on equal intervals of the batch (h)."""
    feed = np.asarray(feed, dtype=float)
    return FeedProfile(times=tuple(np.linspace(0.0, batch_time, feed.size + 1)[:-1]), rates=tuple(feed))


def member_objective(values: np.ndarray, mode: str) -> float:
    """The mean (``mode`` "mean") or the smallest ("worst") of the members' final product amounts (mmol)."""
    return float(np.mean(values)) if mode == "mean" else float(np.min(values))


def robust_mode(settings: FeedSettings, mode: str | None, caller: str) -> str:
    """``mode`` ("mean" or "worst"), default ``settings.robust``; another value raises naming ``caller``."""
    mode = settings.robust if mode is None else mode
    if mode not in ("mean", "worst"):
        raise ValueError(f"The 'mode' parameter of {caller} must be 'mean' or 'worst'. Got {mode!r} instead.")
    return mode
