"""Where to add training data: fresh points where a trained surrogate misses pFBA.

:func:`mpc_bio.surrogate.bend_points` looks at the net alone; :func:`miss_points` asks pFBA. It
solves the pFBA map at many fresh Latin-hypercube points of the surrogate's domain and returns those
where some reaction is off by more than ``threshold`` of its range over the training data: the
places the data do not hold the net to the map (iCH360, range floor 0.079 mmol/gDW/h: 4,254 of
300,000 beyond 1 %, 43 beyond 2 %, nearly all on the sulfate-uptake ramp and around the four kinks
of NADTRHD near glucose 0.47). Solving them again
into the data (``mpc_bio.metabolism.extend_dataset``) and continuing the training
(``train_surrogate(init=...)``) is one round of active learning. The candidates are never the test
points of an evaluation (other seeds), so the test stays honest.
"""

from __future__ import annotations

import numpy as np

from mpc_bio.metabolism.sampling import SamplePoints, latin_hypercube_points, sample_pfba
from mpc_bio.metabolism.settings import PFBASettings

__all__ = ["miss_points"]


def miss_points(
    surrogate,
    model,
    dataset,
    *,
    n_candidates: int = 300_000,
    threshold: float = 0.01,
    range_floor: float = 1e-3,
    seed: int = 0,
    pfba_settings: PFBASettings | None = None,
    n_workers: int | None = 1,
    progress: bool = True,
) -> SamplePoints:
    """Fresh points where ``surrogate`` misses pFBA by more than ``threshold`` of a reaction's range.

    Parameters
    ----------
    surrogate : Surrogate
        A trained surrogate.
    model : cobra.Model or str or Path
        The model it was trained on (pFBA is solved on it).
    dataset : FluxDataset
        Its training data: each reaction's flux range over the usable rows scales that reaction's
        error, and its pFBA settings are the default ``pfba_settings``.
    n_candidates : int
        Latin-hypercube candidates over the surrogate's domain (each one pFBA solve: iCH360 about
        1,000 per second on two workers).
    threshold : float
        A candidate is returned when some reaction's |error| exceeds this fraction of its range
        (dimensionless, > 0; the accuracy target is 0.02).
    range_floor : float
        Smallest range an error is divided by (mmol/gDW/h, > 0).
    seed : int
        Seed of the candidates (use one that no test set uses).
    pfba_settings : PFBASettings, optional
        Default: the training data's (the same tie-break rule as the data the net learnt).
    n_workers : int or None
        pFBA worker processes (``sample_pfba``; None: one per core).
    progress : bool
        Progress bar over the solves.

    Returns
    -------
    SamplePoints
        The missed candidates in candidate order (``kind="given"``); ``spec`` records the
        parameters, the number of usable candidates and the largest miss (fraction of the range).
    """
    for name, value, ok, expected in (
        (
            "n_candidates",
            n_candidates,
            isinstance(n_candidates, int) and not isinstance(n_candidates, bool) and n_candidates >= 1,
            "a positive integer",
        ),
        ("threshold", threshold, isinstance(threshold, (int, float)) and threshold > 0, "a positive number (fraction of the range)"),
        ("range_floor", range_floor, isinstance(range_floor, (int, float)) and range_floor > 0, "a positive number (mmol/gDW/h)"),
    ):
        if not ok:
            raise ValueError(f"The {name!r} parameter of miss_points must be {expected}. Got {value!r} instead.")
    if tuple(dataset.input_names) != tuple(surrogate.input_names) or tuple(dataset.reaction_ids) != tuple(surrogate.reaction_ids):
        raise ValueError(
            "The 'dataset' parameter of miss_points must be the surrogate's training data (same inputs and reactions); "
            f"got inputs {tuple(dataset.input_names)} and {len(dataset.reaction_ids)} reactions for a surrogate with "
            f"{tuple(surrogate.input_names)} and {len(surrogate.reaction_ids)}."
        )
    if pfba_settings is None:
        recorded = (getattr(dataset, "settings", None) or {}).get("pfba")
        if recorded is None:
            raise ValueError(
                "The 'pfba_settings' parameter of miss_points is needed: the dataset records no pFBA settings "
                "(pass those its fluxes were solved with)."
            )
        pfba_settings = PFBASettings.from_dict(recorded)
    names = tuple(surrogate.input_names)
    box = {n: (float(lo), float(hi)) for n, lo, hi in zip(names, surrogate.domain_low, surrogate.domain_high)}
    candidates = latin_hypercube_points(n_candidates, box, seed=seed)
    ref = sample_pfba(model, candidates, pfba_settings, n_workers=n_workers, progress=progress)
    ok = ref.usable_rows()
    scale = 1.0 / np.maximum(dataset.flux_ranges(), range_floor)
    X = np.asarray(ref.inputs)[ok]
    miss = (np.abs(surrogate.predict(X, check_domain=False) - np.asarray(ref.fluxes)[ok]) * scale).max(axis=1)
    return SamplePoints(
        names=names,
        values=X[miss > threshold],
        kind="given",
        spec={
            "source": "miss_points",
            "n_candidates": int(n_candidates),
            "n_usable_candidates": int(ok.sum()),
            "threshold": float(threshold),
            "range_floor": float(range_floor),
            "seed": int(seed),
            "largest_miss": float(miss.max()) if miss.size else None,
            "surrogate_training_data_hash": surrogate.training_data_hash,
        },
    )
