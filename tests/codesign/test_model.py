"""The control-layer view of the kinetic reactor against the NOMAD stage's own simulator."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.codesign import kinetic_control_model
from mpc_bio.control import BatchProblem, piecewise_feed, simulate_feed
from mpc_bio.feed import FeedProfile
from mpc_bio.nomad.nra_settings import VerificationSettings
from mpc_bio.nomad.reactor import simulate_reactor


def test_amount_form_matches_verification_reactor(tiny_ensemble):
    """Amount-form rhs (L, mmol, gDW) integrated by the control layer = concentration-form reactor
    of nomad.reactor (independent code path), for a design and a feed; rel 1e-5."""
    ens, control, _, _ = tiny_ensemble
    m = int(control.model_index[0])
    fold = np.ones(ens.network.n_reactions)
    fold[ens.network.reaction_index("DDPA")] = 3.0
    km = kinetic_control_model(ens, [m], vmax_folds=fold[None, :], feed_glucose=500.0)
    vs = VerificationSettings(batch_time=8.0, n_points=9)
    ref = simulate_reactor(ens, m, vmax_fold=fold, settings=vs, feed=FeedProfile(times=(0.0, 2.0), rates=(0.0, 0.03)), feed_glucose=500.0)
    problem = BatchProblem(batch_time=8.0, objective="product", feed_max=0.1, volume_max=1.5)
    tr = simulate_feed(
        km.model, problem, km.x0, piecewise_feed(np.array([0.0, 2.0, 8.0]), np.array([0.0, 0.03])), dt=1.0, stop_at_volume_max=False
    )
    V = tr.states[:, km.volume_index]
    assert ref.success
    assert tr.states[:, km.product_index[0]] / V == pytest.approx(ref.product, rel=1e-5, abs=1e-8)
    assert tr.states[:, km.biomass_index[0]] / V == pytest.approx(ref.biomass, rel=1e-5, abs=1e-8)
    assert tr.states[:, km.glucose_index[0]] / V == pytest.approx(ref.substrate, rel=1e-5, abs=1e-6)
    assert V == pytest.approx(ref.volume, rel=1e-9, abs=1e-12)


def test_stacked_members_are_independent_copies(tiny_ensemble):
    """Two stacked members under one feed evolve exactly as each member alone (rel 1e-6)."""
    ens, control, _, _ = tiny_ensemble
    ms = [int(i) for i in control.model_index[:2]]
    both = kinetic_control_model(ens, ms)
    x = both.x0 * (1.0 + 0.01 * np.arange(both.x0.size) / both.x0.size)
    dx = np.asarray(both.model.rhs(x, 0.05, both.model.param_values)).reshape(-1)
    for k, m in enumerate(ms):
        one = kinetic_control_model(ens, [m])
        n = one.model.n_x - 1
        xk = np.r_[x[k * n : (k + 1) * n], x[-1]]
        dk = np.asarray(one.model.rhs(xk, 0.05, one.model.param_values)).reshape(-1)
        assert dx[k * n : (k + 1) * n] == pytest.approx(dk[:n], rel=1e-12, abs=1e-12)
    assert both.model.roles.product == "n_P_m0"


def test_bad_folds_raise(tiny_ensemble):
    ens, control, _, _ = tiny_ensemble
    with pytest.raises(ValueError, match="vmax_folds"):
        kinetic_control_model(ens, [int(control.model_index[0])], vmax_folds=np.ones((2, ens.network.n_reactions)))
