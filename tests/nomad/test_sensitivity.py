"""Expression sensitivity: seeded, bounded draws of a design's fold changes."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.nra_settings import SensitivitySettings, VerificationSettings
from mpc_bio.nomad.sensitivity import expression_sensitivity


def test_expression_sensitivity_draws(stable_model):
    ens, i = stable_model
    vs = VerificationSettings(batch_time=2.0, n_points=3)
    ss = SensitivitySettings(perturbation=0.5, n_draws=2, seed=4)
    enzymes = ("DDPA", "PGI")
    mean = np.array([3.0, 0.5])
    a = expression_sensitivity(ens, [i], "d", enzymes, mean, settings=ss, verification=vs)
    b = expression_sensitivity(ens, [i], "d", enzymes, mean, settings=ss, verification=vs)
    assert np.array_equal(a.folds, b.folds)
    assert a.modes == ("all", "DDPA", "PGI")
    lo, hi = mean * 0.5, mean * 1.5
    assert np.all((a.folds >= lo - 1e-12) & (a.folds <= hi + 1e-12))
    # one-at-a-time modes keep the other enzyme at its mean
    assert np.all(a.folds[1, :, :, 1] == mean[1])
    assert np.all(a.folds[2, :, :, 0] == mean[0])
    assert np.all(a.success)
    assert set(a.summary()) == {"all", "DDPA", "PGI"}
    c = expression_sensitivity(ens, [i], "d", enzymes, mean, settings=ss, verification=vs, each_enzyme=False)
    assert c.modes == ("all",)
    np.testing.assert_array_equal(c.folds[0], a.folds[0])  # the same draws of mode "all"
    np.testing.assert_allclose(c.product[0], a.product[0], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="mean_fold"):
        expression_sensitivity(ens, [i], "d", enzymes, [1.0], verification=vs)
