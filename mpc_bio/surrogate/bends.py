"""Where to add training data: points where a trained surrogate bends but its data are sparse.

A sharp net that follows the kinks of the pFBA map can ring between training points a few
hundredths of a mmol/gDW/h away from them (iCH360: ±0.002 mmol/gDW/h waves of the EAR*y fluxes
where the map is linear, 0.03 from the nearest point). :func:`bend_points` finds such places from
the net alone (no pFBA solves): the nodes of a fine grid where the net's discrete Laplacian is
largest, among those farther than ``min_distance`` from every training point. Solving pFBA there
(``mpc_bio.metabolism.extend_dataset``) and continuing the training (``train_surrogate(init=...)``)
pins the net down where it was free to wander.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from mpc_bio.metabolism.sampling import SamplePoints

__all__ = ["bend_points"]


def bend_points(
    surrogate,
    dataset,
    *,
    spacing: float = 0.02,
    n_points: int = 40_000,
    min_distance: float = 0.01,
    range_floor: float = 1e-3,
    jitter: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> SamplePoints:
    """Points where ``surrogate`` bends most and ``dataset`` has no training point nearby.

    Parameters
    ----------
    surrogate : Surrogate
        A trained surrogate with two inputs.
    dataset : FluxDataset
        Its training data (same input names): the point positions, and each reaction's flux
        range, which scales that reaction's curvature so every reaction counts alike.
    spacing : float
        Grid spacing over the surrogate's domain, both inputs (mmol/gDW/h, > 0).
    n_points : int
        Number of points returned (the nodes with the largest bend; fewer if fewer qualify).
    min_distance : float
        Only grid nodes farther than this from every training point qualify (mmol/gDW/h, >= 0).
    range_floor : float
        Smallest flux range a reaction's curvature is divided by (mmol/gDW/h, > 0), so reactions
        that hardly vary over the data do not dominate.
    jitter : bool
        Move each chosen node uniformly within ±spacing/2 per input (clipped to the domain), so the
        new points do not form another grid.
    seed : int
        Seed of the jitter.
    progress : bool
        Progress bar over the grid rows.

    Returns
    -------
    SamplePoints
        ``kind="given"``, the points (mmol/gDW/h) ordered from the largest bend down, and in
        ``spec`` the parameters, the bend of the last point chosen and the mean distance of the
        chosen nodes from the data (mmol/gDW/h).

    Notes
    -----
    The bend of a node is max over reactions of |v(x + h e1) + v(x - h e1) + v(x + h e2) +
    v(x - h e2) - 4 v(x)| / range (h = ``spacing``), the net's own second difference: zero where
    it is linear, large at its kinks and where it rings. The domain's edge nodes have no
    Laplacian and are never chosen (their jittered neighbours cover the edge).
    """
    names = tuple(surrogate.input_names)
    if len(names) != 2:
        raise ValueError(f"bend_points needs a surrogate with two inputs; got {len(names)}: {names}.")
    if tuple(dataset.input_names) != names or tuple(dataset.reaction_ids) != tuple(surrogate.reaction_ids):
        raise ValueError(
            f"The 'dataset' parameter of bend_points must have the surrogate's inputs {names} and reactions; "
            f"got inputs {tuple(dataset.input_names)}."
        )
    for name, value, valid, expected in (
        ("spacing", spacing, spacing > 0, "a positive number (mmol/gDW/h)"),
        ("n_points", n_points, isinstance(n_points, int) and n_points >= 1, "a positive integer"),
        ("min_distance", min_distance, min_distance >= 0, "a non-negative number (mmol/gDW/h)"),
        ("range_floor", range_floor, range_floor > 0, "a positive number (mmol/gDW/h)"),
    ):
        if isinstance(value, bool) or not valid:
            raise ValueError(f"The {name!r} parameter of bend_points must be {expected}. Got {value!r} instead.")

    lo, hi = np.asarray(surrogate.domain_low, float), np.asarray(surrogate.domain_high, float)
    g0 = np.arange(lo[0], hi[0] + spacing / 2, spacing)
    g1 = np.arange(lo[1], hi[1] + spacing / 2, spacing)
    if len(g0) < 3 or len(g1) < 3:
        raise ValueError(
            f"The 'spacing' parameter of bend_points must leave at least 3 grid nodes per input over the domain "
            f"{lo.tolist()} - {hi.tolist()}; got {spacing!r}."
        )
    usable = dataset.usable_rows()
    every = bool(usable.all())  # no copy of the (often GB-sized) inputs when every row is usable
    scale = 1.0 / np.maximum(dataset.flux_ranges(), range_floor)
    spec = surrogate.spec()

    def row(i: int) -> np.ndarray:
        x = np.column_stack([np.full(len(g1), g0[i]), g1])
        return spec.evaluate(x) * scale

    bend = np.zeros((len(g0), len(g1)))
    prev, cur = row(0), row(1)
    for i in tqdm(range(1, len(g0) - 1), desc="bend points", disable=not progress, leave=False):
        nxt = row(i + 1)
        lap = prev[1:-1] + nxt[1:-1] + cur[2:] + cur[:-2] - 4.0 * cur[1:-1]
        bend[i, 1:-1] = np.abs(lap).max(axis=1)
        prev, cur = cur, nxt

    G0, G1 = np.meshgrid(g0, g1, indexing="ij")
    nodes = np.column_stack([G0.ravel(), G1.ravel()])
    inputs = np.asarray(dataset.inputs)
    dist, _ = cKDTree(inputs if every else inputs[usable]).query(nodes)
    score = np.where((dist > min_distance) & (bend.ravel() > 0), bend.ravel(), -np.inf)
    order = np.argsort(-score, kind="stable")[:n_points]
    order = order[np.isfinite(score[order])]
    points = nodes[order]
    if jitter:
        rng = np.random.default_rng(seed)
        points = np.clip(points + rng.uniform(-spacing / 2, spacing / 2, size=points.shape), lo, hi)
    return SamplePoints(
        names=names,
        values=points,
        kind="given",
        spec={
            "source": "bend_points",
            "spacing": float(spacing),
            "n_points": int(n_points),
            "min_distance": float(min_distance),
            "range_floor": float(range_floor),
            "jitter": bool(jitter),
            "seed": int(seed),
            "surrogate_training_data_hash": surrogate.training_data_hash,
            "last_bend": float(score[order[-1]]) if len(order) else None,
            "mean_distance": float(dist[order].mean()) if len(order) else None,
        },
    )
