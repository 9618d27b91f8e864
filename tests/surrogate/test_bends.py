"""bend_points: the grid nodes where the net bends most, away from the training data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from mpc_bio.surrogate import bend_points


def test_bend_points_are_the_largest_laplacians_away_from_data(small_surrogate, small_dataset):
    """Against a direct computation on the whole grid at once (all nodes evaluated in one call,
    second differences by array slicing, distances by brute force): the same nodes in the same
    order and the same bend of the last one (1e-12 relative, 0 absolute); jittered points stay
    within spacing/2 of their node per input and inside the domain."""
    h, n, dmin = 0.25, 60, 0.3
    pts = bend_points(small_surrogate, small_dataset, spacing=h, n_points=n, min_distance=dmin, jitter=False, progress=False)

    g = np.arange(0.0, 20.0 + h / 2, h)
    G0, G1 = np.meshgrid(g, g, indexing="ij")
    nodes = np.column_stack([G0.ravel(), G1.ravel()])
    scale = 1.0 / np.maximum(np.ptp(small_dataset.fluxes, axis=0), 1e-3)
    V = (small_surrogate.spec().evaluate(nodes) * scale).reshape(len(g), len(g), -1)
    lap = np.zeros((len(g), len(g)))
    lap[1:-1, 1:-1] = np.abs(V[2:, 1:-1] + V[:-2, 1:-1] + V[1:-1, 2:] + V[1:-1, :-2] - 4 * V[1:-1, 1:-1]).max(axis=2)
    far = cdist(nodes, small_dataset.inputs).min(axis=1) > dmin
    score = np.where(far & (lap.ravel() > 0), lap.ravel(), -np.inf)
    want = np.argsort(-score, kind="stable")[:n]
    assert np.isfinite(score[want]).all()
    np.testing.assert_array_equal(pts.values, nodes[want])
    assert pts.spec["last_bend"] == pytest.approx(score[want[-1]], rel=1e-12, abs=0)
    assert pts.kind == "given" and pts.names == small_surrogate.input_names

    jit = bend_points(small_surrogate, small_dataset, spacing=h, n_points=n, min_distance=dmin, seed=3, progress=False)
    assert np.all(np.abs(jit.values - nodes[want]) <= h / 2 + 1e-12)
    assert np.all((jit.values >= 0) & (jit.values <= 20)) and not np.array_equal(jit.values, pts.values)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"spacing": 0.0}, "spacing"),
        ({"n_points": 0}, "n_points"),
        ({"min_distance": -1.0}, "min_distance"),
        ({"spacing": 15.0}, "spacing"),
    ],
)
def test_bend_points_bad_input_names_the_parameter(small_surrogate, small_dataset, kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        bend_points(small_surrogate, small_dataset, progress=False, **kwargs)
