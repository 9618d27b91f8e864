"""miss_points: fresh candidates where the surrogate misses pFBA, against a by-hand reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mpc_bio.metabolism import PFBASolver, latin_hypercube_points, load_model
from mpc_bio.surrogate import miss_points


def test_miss_points_match_a_by_hand_selection(small_surrogate, small_dataset):
    """The returned points are exactly the candidates (same seeded Latin hypercube over the domain)
    where |surrogate - pFBA| / (training range, floor 1e-3) exceeds the threshold for some reaction,
    with pFBA solved here point by point by PFBASolver (not the sampler miss_points uses); the
    largest miss agrees to 1e-6 abs (LP tolerance: the sampler warm-starts its solves)."""
    model = load_model("e_coli_core")
    pts = miss_points(small_surrogate, model, small_dataset, n_candidates=150, threshold=0.02, seed=3, progress=False)
    box = {n: (0.0, 20.0) for n in small_surrogate.input_names}
    X = latin_hypercube_points(150, box, seed=3).values
    solver = PFBASolver(model)
    V = np.array([solver.solve(x).fluxes for x in X])
    scale = 1.0 / np.maximum(np.ptp(small_dataset.fluxes, axis=0), 1e-3)
    miss = (np.abs(small_surrogate.predict(X, check_domain=False) - V) * scale).max(axis=1)
    assert 0 < len(pts) < 150  # the small net misses some candidates, not all
    np.testing.assert_array_equal(pts.values, X[miss > 0.02])
    assert pts.spec["largest_miss"] == pytest.approx(miss.max(), abs=1e-6, rel=0)
    assert pts.spec["n_usable_candidates"] == 150 and pts.names == tuple(small_surrogate.input_names)


def test_miss_points_bad_input(small_surrogate, small_dataset):
    model = load_model("e_coli_core")
    for kwargs, name in (({"threshold": 0.0}, "threshold"), ({"n_candidates": 0}, "n_candidates"), ({"range_floor": -1.0}, "range_floor")):
        with pytest.raises(ValueError, match=f"'{name}'"):
            miss_points(small_surrogate, model, small_dataset, progress=False, **kwargs)
    with pytest.raises(ValueError, match="'pfba_settings'"):
        miss_points(small_surrogate, model, dataclasses.replace(small_dataset, settings={}), progress=False)
