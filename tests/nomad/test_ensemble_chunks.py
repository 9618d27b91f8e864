"""Any subset of a population of kinetic models is sampled exactly as in the whole population."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import sample_ensemble
from mpc_bio.nomad.settings import SamplingSettings


def test_subsets_equal_rows_of_the_whole_population(small_ensemble):
    """Same saturations, Km, Vmax and states (bit for bit) for runs, gaps and single models."""
    net, st = small_ensemble.network, small_ensemble.states
    settings = SamplingSettings(n_models=120, seed=3)
    for idx in (np.arange(0, 50), np.arange(50, 120), np.r_[3:9, 20, 22:30, 119], np.array([77])):
        sub = sample_ensemble(net, st, settings, index=idx)
        ref = small_ensemble.subset(idx)
        for name in ("saturations", "km", "vmax", "state_index"):
            assert np.array_equal(getattr(sub, name), getattr(ref, name)), name
    # the first row is the first draw of the seeded generator (the layout of the unchunked sampler)
    rng = np.random.default_rng([3, 7])
    np.testing.assert_array_equal(small_ensemble.saturations[:2], rng.uniform(0.001, 0.999, size=(2, net.n_slots)))


@pytest.mark.parametrize("idx", [[-1, 2], [5, 120], [4, 4], [6, 5]])
def test_bad_index_is_refused(small_ensemble, idx):
    with pytest.raises(ValueError, match="increasing model numbers in 0..119"):
        sample_ensemble(small_ensemble.network, small_ensemble.states, SamplingSettings(n_models=120, seed=3), index=idx)
