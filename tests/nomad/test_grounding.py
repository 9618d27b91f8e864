"""Reference states grounded in the data: product yield from the fermentation data, periplasmic
concentrations from the medium, literature Km ranges (against closed forms and an independent FBA)."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.ensemble import km_range_slots, sample_ensemble
from mpc_bio.nomad.kinetics import evaluate_rates
from mpc_bio.nomad.network import NetworkError, build_network
from mpc_bio.nomad.settings import EnsembleStudySettings, NetworkSettings, SamplingSettings, SteadyStateSettings
from mpc_bio.nomad.steady_state import medium_exchange_bounds, sample_reference_states

#: The shipped data: 0.31 g/L anthranilate (137.14 g/mol) from the medium's 20 mM glucose (mol/mol).
SHIPPED_YIELD = 0.31 / 137.14 * 1000.0 / 20.0
PTS_KM = ("GLCptspp", "glc__D_p", 0.01, 0.02)


@pytest.fixture(scope="module")
def grounded():
    """The default (iCH360 trpD9923) network with the data's product yield, 4 TFA states (seed 5)."""
    net = build_network(None, NetworkSettings(reference_product="yield", product_yield=SHIPPED_YIELD))
    settings = SteadyStateSettings(n_states=4)
    return net, settings, sample_reference_states(net, settings, seed=5)


def test_data_yield_closed_form(tmp_path):
    """product_yield = (final - initial product) / (initial - final glucose) (rel 1e-12, abs 0), the
    medium's glucose standing in for a missing initial glucose; "fraction" leaves it unset."""
    assert EnsembleStudySettings().network.product_yield is None
    shipped = EnsembleStudySettings.from_dict({"network": {"reference_product": "yield"}})
    assert shipped.network.product_yield == pytest.approx(SHIPPED_YIELD, rel=1e-12, abs=0.0)
    medium = EnsembleStudySettings.from_dict(
        {"network": {"reference_product": "yield"}, "steady_state": {"fixed_concentrations": {"glc__D_e": 25.0}}}
    )
    assert medium.network.product_yield == pytest.approx(SHIPPED_YIELD * 20.0 / 25.0, rel=1e-12, abs=0.0)
    csv = tmp_path / "batch.csv"
    csv.write_text(
        "strain,quantity,time_h,value,unit,source\n"
        "ref,glucose,0,30,mM,\nref,glucose,final,1.5,mM,\nref,product,0,0.2,mM,\nref,product,final,4.1,mM,\n"
    )
    given = EnsembleStudySettings.from_dict(
        {"network": {"reference_product": "yield"}, "screening": {"fermentation_data": str(csv), "reference_strain": "ref"}}
    )
    assert given.network.product_yield == pytest.approx((4.1 - 0.2) / (30.0 - 1.5), rel=1e-12, abs=0.0)
    explicit = EnsembleStudySettings.from_dict({"network": {"reference_product": "yield", "product_yield": 0.05}})
    assert explicit.network.product_yield == 0.05


def test_product_flux_is_data_yield_times_uptake(anthranilate_cobra, grounded):
    """The reference product flux equals yield x glucose uptake (rel 1e-12, abs 0) on both networks;
    growth is the maximum at that product flux (independent FBA, rel 1e-9, abs 1e-9 1/h)."""
    net = grounded[0]
    p = net.fluxes[net.reaction_index(net.product_reaction)]
    assert p == pytest.approx(SHIPPED_YIELD * 10.0, rel=1e-12, abs=0.0)
    settings = NetworkSettings(model="core_shikimate", reference_product="yield", product_yield=SHIPPED_YIELD)
    small = build_network(anthranilate_cobra, settings)
    assert small.fluxes[small.reaction_index("ANTHt")] == pytest.approx(SHIPPED_YIELD * 10.0, rel=1e-12, abs=0.0)
    with anthranilate_cobra as model:
        model.reactions.EX_glc__D_e.bounds = (-10.0, -10.0)
        for rid in settings.knockouts:
            if rid in model.reactions:
                model.reactions.get_by_id(rid).knock_out()
        model.reactions.ANTHt.bounds = (SHIPPED_YIELD * 10.0, SHIPPED_YIELD * 10.0)
        model.objective = small.growth_reaction
        mu = model.slim_optimize()
    assert small.fluxes[small.reaction_index(small.growth_reaction)] == pytest.approx(mu, rel=1e-9, abs=1e-9)
    with pytest.raises(NetworkError, match="product_yield"):
        build_network(anthranilate_cobra, NetworkSettings(model="core_shikimate", reference_product="yield"))


def test_periplasm_bounded_from_medium(grounded):
    """Periplasmic medium species within [c/1.25, 1.25 c] of the medium's c (closed form, exact), the
    sampled states inside (rel 1e-9); fold None gives none; metabolite_bounds override."""
    net, settings, states = grounded
    bounds = medium_exchange_bounds(net, settings)
    assert bounds["glc__D_p"] == (20.0 / 1.25, 20.0 * 1.25)
    assert bounds["o2_p"] == (0.2 / 1.25, 0.2 * 1.25)
    assert all(m.endswith("_p") for m in bounds) and "pi_p" in bounds
    ids = list(net.metabolite_ids)
    for m, (lo, hi) in bounds.items():
        c = states.concentrations[:, ids.index(m)]
        assert np.all((c >= lo * (1 - 1e-9)) & (c <= hi * (1 + 1e-9))), m
    assert medium_exchange_bounds(net, SteadyStateSettings(medium_exchange_fold=None)) == {}
    narrow = SteadyStateSettings(n_states=2, metabolite_bounds=(("glc__D_p", 17.0, 18.0),))
    c = sample_reference_states(net, narrow, seed=1).concentrations[:, ids.index("glc__D_p")]
    assert np.all((c >= 17.0 * (1 - 1e-9)) & (c <= 18.0 * (1 + 1e-9)))


def test_km_ranges(grounded):
    """Every model's PTS Km for periplasmic glucose lies in [0.01, 0.02] mM, its saturation is x/(x + Km)
    (rel 1e-12), the models reproduce their reference fluxes (rel 1e-10, abs 1e-12), a subset is sampled
    as in the whole population (exact) and the other slots keep their saturation draws (exact)."""
    net, _, states = grounded
    settings = SamplingSettings(n_models=60, seed=2, km_ranges=(PTS_KM,))
    ens = sample_ensemble(net, states, settings)
    (slots,) = km_range_slots(net, settings)
    assert slots.size == 1
    km = ens.km[:, slots]
    assert np.all((km >= 0.01) & (km <= 0.02))
    assert km.min() < 0.012 and km.max() > 0.018  # spread over the range
    x = np.hstack([ens.concentrations, np.broadcast_to(ens.fixed_concentrations, (ens.n_models, net.n_fixed))])[:, net.slot_species[slots]]
    np.testing.assert_allclose(ens.saturations[:, slots], x / (x + km), rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(evaluate_rates(net, *ens.parameters()), ens.fluxes, rtol=1e-10, atol=1e-12)
    part = sample_ensemble(net, states, settings, index=np.array([3, 4, 5, 40]))
    np.testing.assert_array_equal(part.km, ens.km[[3, 4, 5, 40]])
    plain = sample_ensemble(net, states, SamplingSettings(n_models=60, seed=2))
    others = np.setdiff1d(np.arange(net.n_slots), slots)
    np.testing.assert_array_equal(plain.saturations[:, others], ens.saturations[:, others])
    with pytest.raises(ValueError, match="km_ranges"):
        sample_ensemble(net, states, SamplingSettings(n_models=2, km_ranges=(("NOPE", "glc__D_p", 0.01, 0.02),)))
    with pytest.raises(ValueError, match="km_ranges"):
        SamplingSettings(km_ranges=(("GLCptspp", "glc__D_p", 0.02, 0.01),))
