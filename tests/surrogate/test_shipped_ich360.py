"""The shipped iCH360 surrogate: loads, matches the shipped model, and its recorded metrics reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism.models import load_model, model_hash
from mpc_bio.surrogate import SHIPPED_SURROGATES, ArtifactError, default_surrogate, evaluate_surrogate


@pytest.fixture(scope="module")
def shipped():
    return default_surrogate("iCH360")


def test_shipped_ich360_matches_the_shipped_model(shipped):
    model = load_model("iCH360")
    assert shipped.reaction_ids == tuple(r.id for r in model.reactions)
    assert shipped.model_hash == model_hash(model)
    assert shipped.input_names == ("glucose", "oxygen")
    np.testing.assert_allclose(shipped.domain_high, [20.0, 20.0], rtol=0, atol=0)
    assert (SHIPPED_SURROGATES["iCH360"] / "REMAKE.md").is_file()
    assert shipped.training_data_hash == "953cf7d6dfe371fd"


def test_recorded_metrics_reproduce_on_its_test_points(shipped):
    """pFBA solved afresh (the artifact's recorded rule, l2 tie-break) at the 1,000 off-grid test
    points of the recorded metrics (seed 1) gives the recorded numbers again (rel 1e-9, abs 1e-12),
    and they meet the targets: growth within 1 % of its maximum, every reaction within 2 % of its
    range at every point, mass balance <= 1e-9 mmol/gDW/h."""
    rec = shipped.metrics["test"]
    m = evaluate_surrogate(
        shipped, load_model("iCH360"), n_points=rec["n_points"], seed=1, pfba_settings=shipped.pfba_settings, n_workers=1
    ).summary()
    for key in ("growth_max_abs_err_frac", "worst_reaction_max_err_frac", "median_r2"):
        assert m[key] == pytest.approx(rec[key], rel=1e-9, abs=1e-12), key
    assert m["worst_reaction"] == rec["worst_reaction"]
    assert m["points_within_2pct"] == rec["points_within_2pct"] == rec["n_points"]
    assert m["growth_max_abs_err_frac"] <= 0.01 and m["worst_reaction_max_err_frac"] <= 0.02
    assert m["mass_balance_residual"] <= 1e-9


def test_unknown_shipped_name_is_refused():
    with pytest.raises(ArtifactError, match="'model' parameter"):
        default_surrogate("iJO1366")
