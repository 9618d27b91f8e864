"""Kinetic network construction: the anthranilate case, pFBA reference, clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.metabolism.models import model_hash
from mpc_bio.nomad.network import SHIKIMATE_BRANCH, NetworkError, build_network
from mpc_bio.nomad.settings import NetworkSettings, SteadyStateSettings


def test_default_network_has_branch_export_and_no_anprt(anthranilate_network):
    net = anthranilate_network
    for rid in SHIKIMATE_BRANCH + ("ANTHt", "GLCpts", "Biomass_Ecoli_core"):
        assert rid in net.reaction_ids
    assert "ANPRT" not in net.reaction_ids
    assert np.all(np.abs(net.fluxes) > 1e-7)
    # the product branch carries one flux, equal along the linear pathway
    v = dict(zip(net.reaction_ids, net.fluxes))
    for rid in SHIKIMATE_BRANCH:
        assert v[rid] == pytest.approx(v["ANTHt"], rel=1e-6, abs=1e-9)
    assert v["ANTHt"] > 0.0
    # balanced metabolites are at steady state
    assert np.abs(net.stoichiometry @ net.fluxes).max() == pytest.approx(0.0, abs=1e-7)
    assert net.rate_laws[net.reaction_index("ANTHt")] == "mass_action"
    assert net.rate_laws[net.reaction_index("PGI")] == "convenience"
    assert set(net.fixed_ids) >= {"glc__D_e", "anth_e", "o2_e"}


def test_reference_fluxes_match_cobra_pfba_growth(anthranilate_cobra):
    """The reference growth equals cobra's pFBA with the same product flux fixed (independent path)."""
    import cobra

    model = anthranilate_cobra.copy()
    before = model_hash(model)
    net = build_network(model)
    assert model_hash(model) == before  # the caller's model is not mutated
    with model:
        model.reactions.EX_glc__D_e.bounds = (-10.0, -10.0)
        model.reactions.ANPRT.knock_out() if "ANPRT" in model.reactions else None
        vp = float(net.fluxes[net.reaction_index("ANTHt")])
        model.reactions.ANTHt.bounds = (vp, vp)
        sol = cobra.flux_analysis.pfba(model)
    g = net.reaction_index("Biomass_Ecoli_core")
    assert net.fluxes[g] == pytest.approx(sol.fluxes["Biomass_Ecoli_core"], rel=1e-6, abs=1e-9)


def test_reaction_without_flux_is_a_clear_error(anthranilate_cobra, anthranilate_network):
    model = anthranilate_cobra
    net = anthranilate_network
    reactions = list(net.reaction_ids) + ["FBP"]  # fructose-bisphosphatase: no flux on glucose
    with pytest.raises(NetworkError, match="FBP.*carries no flux"):
        build_network(model, NetworkSettings(reactions=tuple(reactions)))


def test_network_without_product_is_a_clear_error(ecoli_core, anthranilate_cobra):
    with pytest.raises(NetworkError, match="no product/substrate reaction 'ANTHt'"):
        build_network(ecoli_core, NetworkSettings(model="e_coli_core"))
    model = anthranilate_cobra
    with pytest.raises(NetworkError, match="has no product"):
        build_network(model, NetworkSettings(knockouts=("ANPRT", "DDPA")))


def test_non_positive_concentration_bound_is_a_clear_error():
    with pytest.raises(ValueError, match="concentration_bounds.*positive"):
        SteadyStateSettings(concentration_bounds=(0.0, 10.0))
    with pytest.raises(ValueError, match="metabolite_bounds"):
        SteadyStateSettings(metabolite_bounds=(("atp_c", -1.0, 5.0),))
    with pytest.raises(ValueError, match="saturation_bounds"):
        from mpc_bio.nomad.settings import SamplingSettings

        SamplingSettings(saturation_bounds=(0.0, 0.5))


def test_network_round_trips_through_dict(anthranilate_network):
    from mpc_bio.nomad.network import KineticNetwork

    again = KineticNetwork.from_dict(anthranilate_network.to_dict())
    assert again.digest() == anthranilate_network.digest()
    np.testing.assert_array_equal(again.stoichiometry, anthranilate_network.stoichiometry)
