"""Rate laws: reference fluxes reproduced, closed forms, exact Jacobians vs finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.kinetics import evaluate_rate_jacobian, evaluate_rates


def test_every_model_reproduces_reference_fluxes(small_ensemble):
    v = evaluate_rates(small_ensemble.network, *small_ensemble.parameters())
    ref = np.broadcast_to(small_ensemble.network.fluxes, v.shape)
    np.testing.assert_allclose(v, ref, rtol=1e-9, atol=1e-12)


def _species(ens, i):
    return np.concatenate([ens.concentrations[i], ens.fixed_concentrations])


def test_convenience_rate_matches_closed_form(small_ensemble):
    """PGI (g6p <=> f6p) written by hand: Vmax (1 - Gamma/Keq) (s/Ks) / (1 + s/Ks + p/Kp)."""
    ens, net = small_ensemble, small_ensemble.network
    i = 5
    j = net.reaction_index("PGI")
    x = _species(ens, i).copy()
    x[: net.n_metabolites] *= np.linspace(0.5, 2.0, net.n_metabolites)  # away from the reference
    g6p, f6p = net.species_ids.index("g6p_c"), net.species_ids.index("f6p_c")
    slots = np.flatnonzero(net.slot_reaction == j)
    ks = {int(net.slot_species[k]): ens.km[i, k] for k in slots}
    gamma = x[f6p] / x[g6p]
    expected = ens.vmax[i, j] * (1 - gamma / np.exp(ens.ln_keq[i, j])) * (x[g6p] / ks[g6p]) / (1 + x[g6p] / ks[g6p] + x[f6p] / ks[f6p])
    v = evaluate_rates(net, x[: net.n_metabolites], x[net.n_metabolites :], ens.km[i], ens.ln_keq[i], ens.vmax[i])
    assert v[j] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_mass_action_transport_matches_closed_form(small_ensemble):
    """ANTHt (anth_c -> anth_e): Vmax (1 - (anth_e/anth_c)/Keq) anth_c."""
    ens, net = small_ensemble, small_ensemble.network
    i = 7
    j = net.reaction_index("ANTHt")
    x = _species(ens, i)
    a_c, a_e = x[net.species_ids.index("anth_c")], x[net.species_ids.index("anth_e")]
    expected = ens.vmax[i, j] * (1 - (a_e / a_c) / np.exp(ens.ln_keq[i, j])) * a_c
    v = evaluate_rates(net, x[: net.n_metabolites], x[net.n_metabolites :], ens.km[i], ens.ln_keq[i], ens.vmax[i])
    assert v[j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert v[j] == pytest.approx(net.fluxes[j], rel=1e-9, abs=1e-12)


def test_rate_jacobian_matches_central_finite_differences(small_ensemble):
    ens, net = small_ensemble, small_ensemble.network
    for i in (0, 11):
        x, xf, K, lk, vm = (a[i] if a.ndim == 2 else a for a in ens.parameters())
        J = evaluate_rate_jacobian(net, x, xf, K, lk, vm)
        fd = np.zeros_like(J)
        for m in range(net.n_metabolites):
            h = 1e-6 * x[m]
            xp, xm = x.copy(), x.copy()
            xp[m] += h
            xm[m] -= h
            fd[:, m] = (evaluate_rates(net, xp, xf, K, lk, vm) - evaluate_rates(net, xm, xf, K, lk, vm)) / (2 * h)
        scale = np.abs(J).max(axis=1, keepdims=True)
        np.testing.assert_allclose(J / scale, fd / scale, rtol=0, atol=1e-6)
    # the batched path gives the same dense Jacobian as the single-model path
    Jb = evaluate_rate_jacobian(net, *ens.parameters([0, 11]))
    np.testing.assert_allclose(
        Jb[1], evaluate_rate_jacobian(net, *(a[11] if a.ndim == 2 else a for a in ens.parameters())), rtol=1e-12, atol=1e-14
    )


REGULATIONS = (("PFK", "pep_c", "inhibition"), ("PFK", "adp_c", "activation"), ("PYK", "fdp_c", "activation"))


def test_allosteric_regulation(anthranilate_cobra):
    """Regulated network: fluxes reproduced, factor Ki/(Ki+x) and x/(Ka+x) exact, Jacobian vs FD."""
    from mpc_bio.metabolism.models import model_hash
    from mpc_bio.nomad.ensemble import sample_ensemble
    from mpc_bio.nomad.network import build_network
    from mpc_bio.nomad.settings import NetworkSettings, SamplingSettings
    from mpc_bio.nomad.steady_state import sample_reference_states

    before = model_hash(anthranilate_cobra)
    net = build_network(anthranilate_cobra, NetworkSettings(regulations=REGULATIONS))
    assert model_hash(anthranilate_cobra) == before
    reg = np.flatnonzero(np.abs(net.slot_role) == 2)
    assert reg.size == 3
    ens = sample_ensemble(net, sample_reference_states(net, n_states=2, seed=1), SamplingSettings(n_models=6, seed=1))
    v = evaluate_rates(net, *ens.parameters())
    np.testing.assert_allclose(v, np.broadcast_to(net.fluxes, v.shape), rtol=1e-9, atol=1e-12)
    # doubling the inhibitor pep_c changes PFK by exactly (Ki + x)/(Ki + 2x) times the unregulated change
    i = 0
    x, xf, K, lk, vm = (a[i] if a.ndim == 2 else a for a in ens.parameters())
    j = net.reaction_index("PFK")
    m_pep, m_adp = net.metabolite_ids.index("pep_c"), net.metabolite_ids.index("adp_c")
    k_pep = [k for k in reg if net.slot_species[k] == m_pep][0]
    k_adp = [k for k in reg if net.slot_species[k] == m_adp][0]
    x2 = x.copy()
    x2[m_pep] *= 2.0
    ratio = evaluate_rates(net, x2, xf, K, lk, vm)[j] / evaluate_rates(net, x, xf, K, lk, vm)[j]
    ki = K[k_pep]
    assert ratio == pytest.approx((ki + x[m_pep]) / (ki + 2 * x[m_pep]), rel=1e-12)  # pep is no PFK reactant
    # activator: the factor x/(Ka + x) -> exactly 1 as Ka -> 0
    K_sat = K.copy()
    K_sat[k_adp] = 1e-300
    v_sat = evaluate_rates(net, x, xf, K_sat, lk, vm)[j]
    assert v_sat == pytest.approx(net.fluxes[j] * (K[k_adp] + x[m_adp]) / x[m_adp], rel=1e-12)
    J = evaluate_rate_jacobian(net, x, xf, K, lk, vm)
    h = 1e-6 * x[m_pep]
    xp, xm = x.copy(), x.copy()
    xp[m_pep] += h
    xm[m_pep] -= h
    fd = (evaluate_rates(net, xp, xf, K, lk, vm) - evaluate_rates(net, xm, xf, K, lk, vm)) / (2 * h)
    np.testing.assert_allclose(J[:, m_pep], fd, rtol=1e-6, atol=1e-9 * np.abs(J).max())
    assert J[j, m_pep] < 0  # inhibition


def test_unknown_regulator_is_a_clear_error(anthranilate_cobra):
    from mpc_bio.nomad.network import NetworkError, build_network
    from mpc_bio.nomad.settings import NetworkSettings

    with pytest.raises(NetworkError, match="regulator 'trp__L_c'"):
        build_network(anthranilate_cobra, NetworkSettings(regulations=(("DDPA", "trp__L_c", "inhibition"),), strict_regulations=True))
    # by default a regulation that does not fit is skipped and recorded
    net = build_network(anthranilate_cobra, NetworkSettings(regulations=(("DDPA", "trp__L_c", "inhibition"),)))
    assert net.unapplied_regulations == (("DDPA", "trp__L_c", "inhibition"),)
    assert not np.any(np.abs(net.slot_role) >= 2)
    with pytest.raises(ValueError, match="regulations"):
        NetworkSettings(regulations=(("DDPA", "phe__L_c", "repression"),))
