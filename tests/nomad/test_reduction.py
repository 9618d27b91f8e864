"""Network reduction: core subsystems and transports kept, the rest lumped exactly into growth; the iCH360 case."""

from __future__ import annotations

import cobra
import numpy as np
import pytest

from mpc_bio.metabolism.models import model_hash
from mpc_bio.nomad.network import build_network, reference_fluxes
from mpc_bio.nomad.reduction import LUMPED_GROWTH_ID, PAPER_TARGETS, is_transport, reaction_subsystems
from mpc_bio.nomad.regulation import SHIKIMATE_REGULATIONS
from mpc_bio.nomad.settings import NetworkSettings

SUBSYSTEMS = (
    "Glycolysis/Gluconeogenesis",
    "Pentose Phosphate Pathway",
    "Citric Acid Cycle",
    "Tyrosine, Tryptophan, and Phenylalanine Metabolism",
)
SETTINGS = NetworkSettings(reduce=True, core_subsystems=SUBSYSTEMS, keep_reactions=("PPS", "ME2"))


@pytest.fixture(scope="module")
def reduced(anthranilate_cobra):
    before = model_hash(anthranilate_cobra)
    net = build_network(anthranilate_cobra, SETTINGS)
    assert model_hash(anthranilate_cobra) == before  # the caller's model is unchanged
    return net


def test_lumped_growth_is_the_net_conversion_of_the_lumped_reactions(anthranilate_cobra, reduced):
    """Independent path: the source model's full stoichiometric matrix times its reference fluxes.

    For every species of the reduced network, the growth column equals
    (S_biomass v_biomass + sum_lumped S_r v_r) / v_biomass (rel 1e-9, abs 1e-12); the reduced
    network is at steady state (abs 1e-9 mmol/gDW/h).
    """
    model = anthranilate_cobra
    fluxes, growth = reference_fluxes(model, SETTINGS, force_targets=True)
    S = cobra.util.create_stoichiometric_matrix(model)
    rid = [r.id for r in model.reactions]
    mid = [m.id for m in model.metabolites]
    v = np.array([fluxes[r] for r in rid])
    cols = [rid.index(r) for r in reduced.lumped_reactions] + [rid.index(growth)]
    expected = S[:, cols] @ v[cols] / fluxes[growth]
    net = reduced
    g = net.reaction_index(LUMPED_GROWTH_ID)
    col = np.concatenate([net.stoichiometry[:, g], net.fixed_stoichiometry[:, g]])
    for k, sp in enumerate(net.species_ids):
        assert col[k] == pytest.approx(expected[mid.index(sp)], rel=1e-9, abs=1e-12), sp
    # species touched only by lumped reactions are balanced inside the lump (so they leave the network)
    kept_species = set(net.species_ids) | {
        m.id for r in net.reaction_ids if r in model.reactions for m in model.reactions.get_by_id(r).metabolites
    }
    for i, m in enumerate(mid):
        if m not in kept_species and model.metabolites.get_by_id(m).compartment != "e":
            assert expected[i] == pytest.approx(0.0, abs=1e-9), m
    assert np.abs(net.stoichiometry @ net.fluxes).max() == pytest.approx(0.0, abs=1e-9)
    assert net.fluxes[g] == pytest.approx(fluxes[growth], rel=1e-12, abs=0)


def test_reduction_rule(anthranilate_cobra, reduced):
    """Kept: flux-carrying reactions of the chosen subsystems, transports and the named targets; the rest lumped."""
    model, net = anthranilate_cobra, reduced
    sub = reaction_subsystems(model)
    fluxes, growth = reference_fluxes(model, SETTINGS, force_targets=True)
    for rid in net.reaction_ids:
        if rid == LUMPED_GROWTH_ID:
            continue
        r = model.reactions.get_by_id(rid)
        assert sub[rid] in SUBSYSTEMS or is_transport(r) or rid in SETTINGS.keep_reactions, rid
    for rid in net.lumped_reactions:
        r = model.reactions.get_by_id(rid)
        core = sub[rid] in SUBSYSTEMS or is_transport(r)
        assert rid not in SETTINGS.keep_reactions and (not core or abs(fluxes[rid]) < SETTINGS.min_core_flux), rid
        assert rid not in net.reaction_ids
    for r in model.reactions:
        if sub[r.id] in SUBSYSTEMS and abs(fluxes[r.id]) >= SETTINGS.min_core_flux and r not in model.boundary and r.id != "ANPRT":
            assert r.id in net.reaction_ids, r.id
    v = dict(zip(net.reaction_ids, net.fluxes))
    # targets pFBA leaves at zero carry the minimal flux in the direction the model allows (both irreversible)
    assert v["PPS"] == pytest.approx(SETTINGS.min_target_flux, rel=1e-9, abs=1e-12)
    assert v["ME2"] == pytest.approx(SETTINGS.min_target_flux, rel=1e-9, abs=1e-12)
    assert "ANPRT" not in net.reaction_ids and v["ANTHt"] > 0
    assert net.rate_laws[net.reaction_index(LUMPED_GROWTH_ID)] == "growth"
    assert net.flux_bounds.shape == (net.n_reactions, 2)
    assert np.all((net.fluxes >= net.flux_bounds[:, 0] - 1e-9) & (net.fluxes <= net.flux_bounds[:, 1] + 1e-9))


def test_small_network_is_unchanged_by_default(anthranilate_network):
    """A cobra model handed to build_network is not reduced unless asked; the default regulations do not fit it."""
    assert "Biomass_Ecoli_core" in anthranilate_network.reaction_ids
    assert anthranilate_network.lumped_reactions == ()
    assert set(anthranilate_network.unapplied_regulations) == set(SHIKIMATE_REGULATIONS)
    assert anthranilate_network.substrate_reaction == "GLCpts"


@pytest.fixture(scope="module")
def ich360_network():
    return build_network()  # the default: NOMAD's trpD9923 network from the shipped iCH360


@pytest.mark.slow
def test_default_network_from_ich360(ich360_network):
    """Size and content of the default network (the paper's: 196 reactions, 159 metabolites, 2 compartments)."""
    net = ich360_network
    assert net.model_id == "ich360_trpD9923"
    assert 60 <= net.n_reactions <= 196 and 60 <= net.n_metabolites <= 159
    assert {m.rsplit("_", 1)[1] for m in net.metabolite_ids} == {"c", "p"}  # cytosol and periplasm balanced
    assert {m.rsplit("_", 1)[1] for m in net.fixed_ids} == {"e"}
    assert "ANPRT" not in net.reaction_ids and "ANPRT" in net.dropped_reactions
    for rid in PAPER_TARGETS + (
        "DDPA",
        "DHQS",
        "DHQTi",
        "SHK3Dr",
        "SHKK",
        "PSCVT",
        "CHORS",
        "ANS",
        "CHORM",
        "PPNDH",
        "PPND",
        "ANTHt",
        "GLCptspp",
        "GLCtex_copy1",
    ):
        assert rid in net.reaction_ids, rid
    assert net.substrate_reaction == "GLCtex_copy1" and net.growth_reaction == LUMPED_GROWTH_ID
    assert np.abs(net.stoichiometry @ net.fluxes).max() == pytest.approx(0.0, abs=1e-9)
    v = dict(zip(net.reaction_ids, net.fluxes))
    for rid in PAPER_TARGETS:
        assert abs(v[rid]) >= 0.05 - 1e-9, rid
    assert v["GLCtex_copy1"] == pytest.approx(10.0, rel=1e-9)
    assert net.unapplied_regulations == ()
    # mass action only across the outer membrane (periplasm <-> extracellular), as in the paper
    assert net.rate_laws[net.reaction_index("PItex")] == "mass_action"
    assert net.rate_laws[net.reaction_index("PIt2rpp")] == "convenience"
    assert int(np.sum(np.abs(net.slot_role) >= 2)) == len(SHIKIMATE_REGULATIONS)
    assert len(net.lumped_reactions) > 100  # amino acid, nucleotide, lipid and cofactor synthesis
