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


def test_designs_split_into_model_chunks_on_workers_equal_one_design_at_a_time(stable_model, stable_models, tmp_path):
    """Two designs x three models on 2 workers: tasks per (design, chunk of models) - 6 of them,
    counted as the finished tasks a checkpoint keeps - and each design's result equals
    expression_sensitivity of that design alone in this process (exactly: rel 0, abs 0), the draws too."""
    from mpc_bio.nomad.checkpoint import chunk_checkpoint
    from mpc_bio.nomad.sensitivity import expression_sensitivities
    from mpc_bio.nomad.viability import ViabilityRule

    ens, _ = stable_model
    models = [int(m) for m in stable_models[:3]]
    vs = VerificationSettings(batch_time=2.0, n_points=3)
    ss = SensitivitySettings(perturbation=0.5, n_draws=2, seed=4)
    rule = ViabilityRule(concentration_fold=20.0, min_growth_ratio=0.5)
    designs = [("d-1", ("DDPA", "PGI"), (3.0, 0.5)), ("d-2", ("DDPA",), (2.0,))]
    ref = np.array([0.1, 0.2, 0.3])
    with chunk_checkpoint(tmp_path / "ck") as cp:
        split = expression_sensitivities(
            ens, models, designs, settings=ss, verification=vs, viability=rule, reference_titer=ref, n_workers=2
        )
    assert cp.n_written == 6  # ceil(4 x 2 workers / 2 designs) = 4 parts, at most 3 models: 3 per design
    for (label, enzymes, mean), got in zip(designs, split):
        alone = expression_sensitivity(ens, models, label, enzymes, mean, settings=ss, verification=vs, viability=rule, reference_titer=ref)
        assert got.design == label and got.modes == alone.modes and got.model_ids == alone.model_ids
        for name in ("folds", "product", "success", "reference_titer", "nominal_titer", "readout_times"):
            np.testing.assert_array_equal(getattr(got, name), getattr(alone, name), err_msg=name)
        assert got.failure.tolist() == alone.failure.tolist()
