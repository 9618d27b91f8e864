"""ORACLE sampling: saturations and Km, determinism with seeds, save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import load_ensemble, sample_ensemble
from mpc_bio.nomad.settings import SamplingSettings, SteadyStateSettings
from mpc_bio.nomad.steady_state import sample_reference_states


def test_reference_states_are_consistent(small_ensemble):
    net, st = small_ensemble.network, small_ensemble.states
    lo, hi = SteadyStateSettings().concentration_bounds
    assert np.all(st.concentrations >= lo) and np.all(st.concentrations <= hi)
    # direction of every displacement matches its flux: ln(Gamma/Keq) < 0 for v > 0
    assert np.all(np.sign(st.ln_displacement) == -np.sign(net.fluxes))
    ln_gamma = np.log(st.concentrations) @ net.stoichiometry + np.log(st.fixed_concentrations) @ net.fixed_stoichiometry
    np.testing.assert_allclose(ln_gamma - st.ln_keq, st.ln_displacement, rtol=0, atol=1e-10)


def test_km_follows_saturation(small_ensemble):
    ens, net = small_ensemble, small_ensemble.network
    assert np.all((ens.saturations >= 0.001) & (ens.saturations <= 0.999))
    species = np.hstack([ens.concentrations, np.broadcast_to(ens.fixed_concentrations, (ens.n_models, net.n_fixed))])
    x = species[:, net.slot_species]
    np.testing.assert_allclose(x / (x + ens.km), ens.saturations, rtol=1e-12, atol=0)
    assert np.all(ens.vmax > 0)


def test_sampling_is_deterministic(anthranilate_network):
    def draw(seed):
        st = sample_reference_states(anthranilate_network, n_states=3, seed=seed)
        return sample_ensemble(anthranilate_network, st, SamplingSettings(n_models=10, seed=seed))

    a, b, c = draw(4), draw(4), draw(5)
    np.testing.assert_array_equal(a.km, b.km)
    np.testing.assert_array_equal(a.vmax, b.vmax)
    np.testing.assert_array_equal(a.concentrations, b.concentrations)
    assert not np.allclose(a.km, c.km)


def test_save_load_round_trip(small_ensemble, tmp_path):
    small_ensemble.save(tmp_path / "ens")
    back = load_ensemble(tmp_path / "ens")
    assert back.network.digest() == small_ensemble.network.digest()
    for name in ("km", "vmax", "saturations", "state_index", "concentrations", "ln_keq", "ln_displacement"):
        np.testing.assert_array_equal(getattr(back, name), getattr(small_ensemble, name))
    assert back.cell_volume == small_ensemble.cell_volume and back.seed == small_ensemble.seed
    with pytest.raises(FileNotFoundError, match="ensemble.npz"):
        load_ensemble(tmp_path / "missing")
