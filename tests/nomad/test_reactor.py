"""The kinetic reactor: closed forms, feeds, the batch and fed-batch runs against each other and
against an independent integration of the same equations."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.feed import FeedProfile
from mpc_bio.nomad.nra_settings import VerificationSettings
from mpc_bio.nomad.reactor import simulate_batch, simulate_reactor


def test_batch_run_matches_the_segmented_reactor_run(stable_model):
    """simulate_batch (the batch form: no volume state, one CVODES call over the run) and
    simulate_reactor without feed (the fed form at F = 0, one call per output interval) agree:
    rel 1e-4, abs 1e-7 (biomass, product) and 1e-6 mM (substrate)."""
    ens, i = stable_model
    vs = VerificationSettings(batch_time=3.0, n_points=7)
    mine = simulate_reactor(ens, i, settings=vs)
    theirs = simulate_batch(ens, i, 3.0, vs.biomass0, n_points=7)
    assert mine.success and theirs.success
    assert mine.biomass == pytest.approx(theirs.biomass, rel=1e-4, abs=1e-7)
    assert mine.product == pytest.approx(theirs.product, rel=1e-4, abs=1e-7)
    assert mine.substrate == pytest.approx(theirs.substrate, rel=1e-4, abs=1e-6)
    assert np.all(mine.volume == pytest.approx(1.0, rel=1e-12))


def test_fed_batch_mixing_closed_form(stable_model):
    """With (almost) no cells the feed only mixes: s V = s0 V0 + s_in * integral(F), V = V0 + integral(F)."""
    ens, i = stable_model
    vs = VerificationSettings(batch_time=10.0, n_points=11, biomass0=1e-12, feed_glucose=500.0)
    feed = FeedProfile(times=(0.0, 2.5, 6.0), rates=(0.0, 0.05, 0.01))
    sim = simulate_reactor(ens, i, settings=vs, feed=feed)
    assert sim.success
    fed_volume = np.array([0.05 * max(0.0, min(t, 6.0) - 2.5) + 0.01 * max(0.0, t - 6.0) for t in sim.times])
    assert sim.volume == pytest.approx(1.0 + fed_volume, rel=1e-7, abs=1e-9)
    s0 = sim.substrate[0]
    assert sim.substrate * sim.volume == pytest.approx(s0 + 500.0 * fed_volume, rel=1e-6, abs=1e-6)
    assert sim.substrate_fed_mmol == pytest.approx(500.0 * fed_volume[-1], rel=1e-12)


def test_callable_feed_equals_profile(stable_model):
    ens, i = stable_model
    vs = VerificationSettings(batch_time=4.0, n_points=9)
    prof = FeedProfile(times=(0.0, 2.0), rates=(0.0, 0.02))
    a = simulate_reactor(ens, i, settings=vs, feed=prof)
    b = simulate_reactor(ens, i, settings=vs, feed=lambda t: 0.02 if t >= 2.0 else 0.0)
    assert a.product == pytest.approx(b.product, rel=1e-9, abs=1e-12)
    assert a.volume[-1] == pytest.approx(1.04, rel=1e-9)
    bad = simulate_reactor(ens, i, settings=vs, feed=lambda t: -1.0)
    assert not bad.success and "feed rate" in bad.message
    with pytest.raises(ValueError, match="'feed' parameter"):
        simulate_reactor(ens, i, settings=vs, feed=0.02)


def test_batch_reference_grows_exponentially(small_ensemble, stable_models):
    """At the reference steady state, biomass grows as X0 exp(mu t) while substrate is ample."""
    ens, i = small_ensemble, int(stable_models[0])
    mu = ens.network.fluxes[ens.network.reaction_index(ens.network.growth_reaction)]
    x0 = 1e-5  # gDW/L: the medium's glucose hardly changes, so the cells stay at their steady state
    sim = simulate_batch(ens, i, duration=0.5, biomass0=x0, n_points=6)
    assert sim.success
    np.testing.assert_allclose(sim.biomass, x0 * np.exp(mu * sim.times), rtol=1e-6)
    # substrate consumed and product formed = flux x integral of biomass
    integral = x0 * (np.exp(mu * 0.5) - 1) / mu
    vs = ens.network.fluxes[ens.network.reaction_index(ens.network.substrate_reaction)]
    vp = ens.network.fluxes[ens.network.reaction_index(ens.network.product_reaction)]
    assert sim.substrate[0] - sim.substrate[-1] == pytest.approx(vs * integral, rel=1e-5)
    assert sim.product[-1] == pytest.approx(vp * integral, rel=1e-5)


def test_fed_batch_matches_an_independent_integration(stable_model):
    """The fed-batch reactor against the same balances written here in numpy (rates from
    evaluate_rates, unscaled states, dilution terms) and integrated by scipy's BDF: biomass,
    substrate, product and volume within rel 1e-4 (CVODES at reltol 1e-7 on scaled states,
    scipy at rtol 1e-8)."""
    from scipy.integrate import solve_ivp

    from mpc_bio.nomad.kinetics import evaluate_rate_jacobian, evaluate_rates
    from mpc_bio.nomad.reactor import substrate_species

    ens, i = stable_model
    net = ens.network
    vs = VerificationSettings(batch_time=3.0, n_points=7, feed_glucose=400.0)
    feed = FeedProfile(times=(0.0, 1.0), rates=(0.0, 0.05))
    sim = simulate_reactor(ens, i, settings=vs, feed=feed)
    assert sim.success
    x_ref, xf, K, lk, vm = (np.asarray(a)[0] if np.ndim(a) == 2 else np.asarray(a) for a in ens.parameters([i]))
    k_s = substrate_species(net)
    n = net.n_metabolites
    g, p = net.reaction_index(net.growth_reaction), net.reaction_index(net.product_reaction)

    def rhs(t, y):
        x, s, X, P, V = y[:n], y[n], y[n + 1], y[n + 2], y[n + 3]
        fixed = xf.copy()
        fixed[k_s] = s
        v = evaluate_rates(net, x, fixed, K, lk, vm)
        F = feed.rate(t)
        D = F / V
        return np.concatenate(
            [
                net.stoichiometry @ v / ens.cell_volume,
                [net.fixed_stoichiometry[k_s] @ v * X + D * (400.0 - s), v[g] * X - D * X, v[p] * X - D * P, F],
            ]
        )

    def jac(t, y):
        """Newton matrix for BDF: exact in x (evaluate_rate_jacobian), a difference in s."""
        x, s, X, V = y[:n], y[n], y[n + 1], y[n + 3]
        fixed = xf.copy()
        fixed[k_s] = s
        v = evaluate_rates(net, x, fixed, K, lk, vm)
        fixed[k_s] = s * (1 + 1e-7) + 1e-12
        dv_ds = (evaluate_rates(net, x, fixed, K, lk, vm) - v) / (fixed[k_s] - s)
        E = np.column_stack([evaluate_rate_jacobian(net, x, fixed, K, lk, vm), dv_ds])
        D = feed.rate(t) / V
        out = np.zeros((n + 4, n + 4))
        out[:n, : n + 1] = net.stoichiometry @ E / ens.cell_volume
        out[n, : n + 1] = net.fixed_stoichiometry[k_s] @ E * X
        out[n + 1, : n + 1], out[n + 2, : n + 1] = E[g] * X, E[p] * X
        out[n, n] -= D
        out[n, n + 1], out[n + 1, n + 1], out[n + 2, n + 1] = net.fixed_stoichiometry[k_s] @ v, v[g] - D, v[p]
        out[n + 2, n + 2] = -D
        return out

    y0 = np.concatenate([x_ref, [xf[k_s], vs.biomass0, 0.0, vs.volume0]])
    out = []
    for a, b, y_start in ((0.0, 1.0, y0), (1.0, 3.0, None)):
        sol = solve_ivp(
            rhs,
            (a, b),
            y0 if y_start is not None else out[-1].y[:, -1],
            t_eval=sim.times[(sim.times >= a) & (sim.times <= b)],
            method="BDF",
            jac=jac,
            rtol=1e-8,
            atol=1e-12,
        )
        assert sol.success
        out.append(sol)
    ref = np.hstack([out[0].y, out[1].y[:, 1:]])
    assert sim.biomass == pytest.approx(ref[n + 1], rel=1e-4)
    assert sim.substrate == pytest.approx(ref[n], rel=1e-4)
    assert sim.product == pytest.approx(ref[n + 2], rel=1e-4, abs=1e-9)
    assert sim.volume == pytest.approx(ref[n + 3], rel=1e-7)
