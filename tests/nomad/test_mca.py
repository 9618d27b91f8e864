"""Control coefficients: summation theorems and finite differences of the nonlinear steady state."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.dynamics import solve_steady_state
from mpc_bio.nomad.mca import compute_control_coefficients, load_control_coefficients


def test_summation_theorems(small_ensemble, stable_models):
    cc = compute_control_coefficients(small_ensemble, stable_models)
    np.testing.assert_allclose(cc.flux.sum(axis=2), 1.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(cc.concentration.sum(axis=2), 0.0, rtol=0, atol=1e-7)
    assert cc.concentration.shape == (stable_models.size, small_ensemble.network.n_metabolites, small_ensemble.network.n_reactions)


def test_connectivity_theorem(small_ensemble, stable_models):
    """sum_j C^v_rj eps_ji restricted to independent directions vanishes: C^v E L = 0 (scaled)."""
    from mpc_bio.nomad.conservation import analyse_conservation

    cc = compute_control_coefficients(small_ensemble, stable_models[:3], keep_elasticities=True)
    L = analyse_conservation(small_ensemble.network).link
    x = cc.reference_concentrations
    for k in range(3):
        # unscaled: sum_j C_rj (1/v_j) dv_j/dx L = 0  <=>  C eps diag(1/x) L = 0
        prod = cc.flux[k] @ cc.elasticities[k] @ np.diag(1 / x[k]) @ L
        assert np.abs(prod).max() == pytest.approx(0.0, abs=1e-6 * np.abs(L).max() / x[k].min())


def test_control_coefficients_match_finite_differences(small_ensemble, stable_models):
    """Perturb each Vmax by +/-0.01%, re-solve the steady state (moieties kept), compare log changes.

    Tolerance: abs 2e-3 + rel 2e-3 (central differences with step 1e-4 and Newton tolerance 1e-11).
    """
    ens = small_ensemble
    i = int(stable_models[0])
    cc = compute_control_coefficients(ens, [i])
    n = ens.network.n_reactions
    h = 1e-4
    fdv = np.zeros((n, n))
    fdx = np.zeros((ens.network.n_metabolites, n))
    for j in range(n):
        up, dn = np.ones(n), np.ones(n)
        up[j], dn[j] = 1 + h, 1 - h
        sp, sm = solve_steady_state(ens, i, up), solve_steady_state(ens, i, dn)
        assert sp.converged and sm.converged, (sp.message, sm.message)
        d = np.log(1 + h) - np.log(1 - h)
        fdv[:, j] = (np.log(np.abs(sp.fluxes)) - np.log(np.abs(sm.fluxes))) / d
        fdx[:, j] = (np.log(sp.concentrations) - np.log(sm.concentrations)) / d
    np.testing.assert_allclose(cc.flux[0], fdv, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(cc.concentration[0], fdx, rtol=2e-3, atol=2e-3)


def test_unperturbed_steady_state_is_the_reference(small_ensemble, stable_models):
    i = int(stable_models[1])
    ss = solve_steady_state(small_ensemble, i)
    assert ss.converged
    np.testing.assert_allclose(ss.concentrations, small_ensemble.concentrations[i], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ss.fluxes, small_ensemble.network.fluxes, rtol=1e-8, atol=1e-10)


def test_control_coefficients_save_load(small_ensemble, stable_models, tmp_path):
    cc = compute_control_coefficients(small_ensemble, stable_models[:4])
    back = load_control_coefficients(cc.save(tmp_path / "cc"))
    np.testing.assert_array_equal(back.flux, cc.flux)
    np.testing.assert_array_equal(back.concentration, cc.concentration)
    np.testing.assert_array_equal(back.model_index, cc.model_index)
    assert back.enzyme_ids == cc.enzyme_ids and back.product_reaction == "ANTHt"
    np.testing.assert_allclose(
        back.yield_control(), cc.flux[:, cc.reaction_ids.index("ANTHt")] - cc.flux[:, cc.reaction_ids.index("GLCpts")], rtol=0, atol=0
    )
    # NRA's thermodynamic form: ln displacement changes by stoichiometry @ dlnx
    assert back.stoichiometry.shape == (len(cc.reaction_ids), len(cc.metabolite_ids))


@pytest.mark.slow
def test_control_coefficients_match_finite_differences_many_models(small_ensemble, stable_models):
    """As above for up to 8 stable models, forward differences with step 1e-5 (tolerance abs 5e-3 + rel 5e-3)."""
    ens = small_ensemble
    n = ens.network.n_reactions
    h = 1e-5
    for i in stable_models[:8]:
        cc = compute_control_coefficients(ens, [int(i)])
        base = solve_steady_state(ens, int(i))
        for j in range(n):
            f = np.ones(n)
            f[j] = 1 + h
            sp = solve_steady_state(ens, int(i), f)
            assert sp.converged
            fd = (np.log(np.abs(sp.fluxes)) - np.log(np.abs(base.fluxes))) / np.log(1 + h)
            np.testing.assert_allclose(cc.flux[0][:, j], fd, rtol=5e-3, atol=5e-3)
