"""The robust feed of a strain: single shooting, direct collocation, or the best of both.

:func:`optimize_feed` maximises the mean or worst-case final product amount over the stacked
ensemble members of a :class:`~mpc_bio.codesign.model.KineticControlModel` with the method of
``FeedSettings.method``: ``"shooting"`` (:func:`~mpc_bio.codesign.shooting.optimize_robust_feed`)
or ``"collocation"`` (:func:`~mpc_bio.codesign.collocation.optimize_feed_collocation`, Radau,
states in linear scale bounded by 0, exact Hessian). With ``"collocation"`` it runs shooting
and collocation from the initial feed and from the shooting optimum (``collocation_start``) and
keeps the best CVODES-verified feed: collocation converges where the dynamics are smooth, but
the Radau equations across glucose exhaustion (intracellular concentrations moving over 6-10
decades within minutes) have no solution near the trajectory on affordable meshes, so neither
method dominates there (see :mod:`mpc_bio.codesign.collocation`).
"""

from __future__ import annotations

import dataclasses

from mpc_bio.codesign.collocation import optimize_feed_collocation
from mpc_bio.codesign.model import KineticControlModel
from mpc_bio.codesign.optimum import FeedOptimum
from mpc_bio.codesign.settings import FeedSettings
from mpc_bio.codesign.shooting import optimize_robust_feed
from mpc_bio.control import BatchProblem

__all__ = ["batch_problem", "optimize_feed"]


def batch_problem(settings: FeedSettings) -> BatchProblem:
    """The control layer's :class:`BatchProblem` for these feed settings (objective "product")."""
    return BatchProblem(
        batch_time=settings.batch_time,
        objective="product",
        feed_min=settings.feed_min,
        feed_max=settings.feed_max,
        volume_max=settings.volume_max,
        glucose_max=settings.glucose_max,
    )


def optimize_feed(
    km: KineticControlModel, settings: FeedSettings, *, strain: str = "reference", mode: str | None = None, initial_feed=None
) -> FeedOptimum:
    """The robust feed optimum by ``settings.method``, same arguments and result.

    ``"shooting"``: :func:`optimize_robust_feed`. ``"collocation"``:
    :func:`~mpc_bio.codesign.collocation.optimize_feed_collocation`, started as
    ``settings.collocation_start`` says: ``"initial"`` from ``initial_feed`` alone;
    ``"shooting"`` single shooting first, then collocation from the shooting optimum;
    ``"both"`` shooting, collocation from ``initial_feed`` and collocation from the shooting
    optimum. Of the solves run, the best CVODES-verified objective is returned, with
    ``method = "collocation"``, a status naming every solve and the one kept, ``iterations`` and
    ``solve_time_s`` summed, ``initial_objective`` that of ``initial_feed`` (scaled to keep the
    glucose limit) and ``success`` the IPOPT success of the kept solve.
    """
    if settings.method != "collocation":
        return optimize_robust_feed(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)
    if settings.collocation_start == "initial":
        return optimize_feed_collocation(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)
    runs = {"shooting": optimize_robust_feed(km, settings, strain=strain, mode=mode, initial_feed=initial_feed)}
    if settings.collocation_start == "both":
        runs["collocation from the initial feed"] = optimize_feed_collocation(
            km, settings, strain=strain, mode=mode, initial_feed=initial_feed
        )
    runs["collocation from the shooting optimum"] = optimize_feed_collocation(
        km, settings, strain=strain, mode=mode, initial_feed=runs["shooting"].feed
    )
    kept = max(runs, key=lambda k: runs[k].objective)
    best = runs[kept]
    status = "; ".join(f"{k}: {r.status}, {r.iterations} iterations, {r.objective:.6g} mmol" for k, r in runs.items())
    return dataclasses.replace(
        best,
        method="collocation",
        status=f"{status}; kept: {kept}",
        initial_objective=runs["shooting"].initial_objective,
        iterations=sum(r.iterations for r in runs.values()),
        solve_time_s=sum(r.solve_time_s for r in runs.values()),
    )
