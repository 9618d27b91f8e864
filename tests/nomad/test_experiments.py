"""The paper's experiments: exhaustion times, strain modifications in verification, the
statistics of the closeness, strain and sensitivity summaries (hand-computed), and the
``mpc-bio nomad experiment`` command end to end (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mpc_bio.nomad.closeness import ClosenessStudy
from mpc_bio.nomad.experiment_settings import ClosenessSettings, RobustnessSettings, StrainComparisonSettings
from mpc_bio.nomad.nra_settings import VerificationSettings
from mpc_bio.nomad.reactor import simulate_reactor
from mpc_bio.nomad.regulation import StrainModification
from mpc_bio.nomad.sensitivity import SensitivityResult
from mpc_bio.nomad.strain_comparison import StrainComparison, experimental_strains
from mpc_bio.nomad.verification import VerificationResult, exhaustion_time, verify_strains
from mpc_bio.nomad.viability import StrainSteadyState, ViabilityRule
from tests.nomad.conftest import linear_batch_result


def test_exhaustion_time_is_the_linear_crossing():
    """s(t) = 10 - 2 t on a 1-h grid: 1 % of 10 is reached at t = 4.95 h exactly (linear
    interpolation of a linear course, abs 1e-12); never reached: NaN."""
    t = np.arange(0.0, 7.0)
    s = np.maximum(10.0 - 2.0 * t, 0.0)
    assert exhaustion_time(t, s, 0.01) == pytest.approx(4.95, abs=1e-12)
    assert np.isnan(exhaustion_time(t, 10.0 - 0.1 * t, 0.01))
    assert np.isnan(exhaustion_time(t, np.full(t.size, np.nan), 0.01))


def test_strain_modification_equals_the_vmax_fold(stable_model):
    """A strain given as a modification (TKT1, TKT2 x5) is simulated like the same change given
    as a Vmax fold to the reactor directly (independent path, rel 1e-9, abs 1e-12)."""
    ens, i = stable_model
    net = ens.network
    vs = VerificationSettings(batch_time=3.0, n_points=7)
    mod = StrainModification("tkt", vmax_folds=(("TKT1", 5.0), ("TKT2", 5.0)))
    res = verify_strains(ens, [i], {"tkt": np.ones((1, net.n_reactions))}, settings=vs, modifications={"tkt": mod})
    fold = np.ones(net.n_reactions)
    fold[[net.reaction_index("TKT1"), net.reaction_index("TKT2")]] = 5.0
    direct = simulate_reactor(ens, i, vmax_fold=fold, settings=vs)
    np.testing.assert_allclose(res.product[1, 0], direct.product, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.biomass[1, 0], direct.biomass, rtol=1e-9, atol=1e-12)
    assert experimental_strains(4.0)["aroGfbr_tktA"].vmax_folds == (("TKT1", 4.0), ("TKT2", 4.0))
    assert experimental_strains()["aroGfbr"].removed_regulations == (("DDPA", "phe__L_c"),)
    with pytest.raises(ValueError, match="modifications"):
        verify_strains(ens, [i], {}, settings=vs, modifications={"x": mod})


def _steady(growth: float, dln: float) -> StrainSteadyState:
    return StrainSteadyState(True, True, -1.0, growth, 1.0, 1.0, dln, True)


def _result(final: np.ndarray, steady: np.ndarray, strains: tuple, rules: tuple) -> VerificationResult:
    """A hand-made batch result (see ``linear_batch_result``), molar mass 1000 g/mol (1 mM = 1 g/L)."""
    return linear_batch_result(final, steady, strains, product_mw_g_per_mol=1000.0, viability=rules)


def test_closeness_group_statistics_hand_computed():
    """Groups 2-fold (titers 2, 3, 4; the third leaves the 2-fold bound) and 20-fold (5, not
    applied, 1): means under the rule (non-viable as 0) and as simulated by hand (rel 1e-12);
    the same steady state is viable in the 20-fold group (rule per group)."""
    final = np.array([[1.0, 1.0, 1.0], [2.0, 3.0, 4.0], [5.0, np.nan, 1.0]])
    steady = np.empty((3, 3), dtype=object)
    for s in range(3):
        for m in range(3):
            steady[s, m] = _steady(1.0, 0.0)
    steady[1, 2] = _steady(1.0, np.log(2.5))
    steady[2, 2] = _steady(1.0, np.log(2.5))
    steady[2, 1] = None
    rules = (ViabilityRule(3.0, 0.8), ViabilityRule(2.0, 0.8), ViabilityRule(20.0, 0.8))
    res = _result(final, steady, ("reference", "2-fold", "20-fold"), rules)
    study = ClosenessStudy(
        ClosenessSettings(concentration_folds=(2.0, 20.0)),
        {"2-fold": ["2-fold"], "20-fold": ["20-fold"]},
        {"2-fold": [[], [], []], "20-fold": [[], [], []]},
        {"2-fold": rules[1], "20-fold": rules[2]},
        res,
    )
    g2, g20 = study.group_summary("2-fold"), study.group_summary("20-fold")
    assert g2["n_strains"] == 3 and g2["n_viable"] == 2
    assert g2["mean_titer_g_per_l"] == pytest.approx((2.0 + 3.0 + 0.0) / 3, rel=1e-12)
    assert g2["mean_titer_g_per_l_as_simulated"] == pytest.approx(3.0, rel=1e-12)
    assert "2-fold concentration bound" in g2["failures"]["2-fold / m2"]
    assert g20["n_strains"] == 2 and g20["n_viable"] == 2
    assert g20["mean_titer_g_per_l"] == pytest.approx(3.0, rel=1e-12)
    assert g20["mean_exhaustion_time_h"] == pytest.approx(2.0 - 0.1 / 5.0, rel=1e-12)  # 1 % of 10 mM on the 5 -> 0 segment
    s = study.summary()
    assert s["reference"]["mean_titer_g_per_l"] == pytest.approx(1.0, rel=1e-12)


def test_strain_comparison_medians_and_orderings_hand_computed():
    """Medians over 3 models under the rule (non-viable as 0) and as simulated (rel 1e-12);
    the paper's orderings follow from them."""
    final = np.array([[1.0, 1.0, 1.0], [1.2, 1.5, 9.0], [2.0, 2.5, 3.0], [3.0, 4.0, 0.5]])
    steady = np.empty((4, 3), dtype=object)
    for s in range(4):
        for m in range(3):
            steady[s, m] = _steady(1.0, 0.0)
    steady[1, 2] = _steady(0.5, 0.0)  # aroGfbr grows too slowly in m2
    labels = ("reference", "aroGfbr", "aroGfbr_tktA", "d-1 DDPA+PGI")
    res = _result(final, steady, labels, (ViabilityRule(),) * 4)
    cmp = StrainComparison(StrainComparisonSettings(), ("d-1 DDPA+PGI",), ViabilityRule(), res)
    s = cmp.summary()
    assert s["median_titer_g_per_l"]["aroGfbr"] == pytest.approx(1.2, rel=1e-12)  # (1.2, 1.5, 0)
    assert s["median_titer_g_per_l_as_simulated"]["aroGfbr"] == pytest.approx(1.5, rel=1e-12)
    assert s["median_titer_g_per_l"]["aroGfbr_tktA"] == pytest.approx(2.5, rel=1e-12)
    assert s["aroGfbr_tktA_above_aroGfbr_above_reference"] is True
    assert s["top_designs_median_above_aroGfbr_tktA"] is True  # 3.0 > 2.5
    assert s["strains"]["aroGfbr"]["n_viable"] == 2 and "growth" in s["strains"]["aroGfbr"]["failures"]["m2"]


def test_sensitivity_fractions_hand_computed():
    """Two models (reference titers 1 and 3), two draws: per-response and per-draw-mean
    fractions with a non-viable draw as zero titer, and as simulated (exact)."""
    t = np.array([0.0, 1.0])
    final = np.array([[[2.0, 0.5], [4.0, 2.0]]])  # mode x model x draw
    product = final[..., None] * t
    failure = np.array([[["", ""], ["", "unstable steady state"]]], dtype=object)
    r = SensitivityResult(
        design="d",
        enzymes=("A",),
        mean_fold=np.array([2.0]),
        modes=("all",),
        model_ids=("m0", "m1"),
        folds=np.ones((1, 2, 2, 1)),
        times=t,
        product=product,
        reference_titer=np.array([1.0, 3.0]),
        nominal_titer=np.array([np.nan, np.nan]),
        success=np.ones((1, 2, 2), dtype=bool),
        seconds=0.0,
        readout_times=np.array([1.0, 1.0]),
        failure=failure,
        viability=ViabilityRule(),
    )
    a = r.summary()["all"]
    # responses above: m0 (2 > 1) yes, (0.5) no; m1 (4 > 3) yes, (2 -> 0 non-viable) no
    assert a["fraction_above_reference"] == pytest.approx(0.5, abs=0)
    assert a["fraction_above_reference_as_simulated"] == pytest.approx(0.5, abs=0)
    # draw means vs reference mean 2: draw 0 (2+4)/2 = 3 > 2; draw 1 (0.5+0)/2 < 2, as simulated (0.5+2)/2 < 2
    assert a["fraction_draws_mean_above_reference"] == pytest.approx(0.5, abs=0)
    assert a["mean_titer_gain"] == pytest.approx((2.0 + 0.5 + 4.0 + 0.0) / 4 / 2.0 - 1.0, rel=1e-12)
    assert a["mean_titer_gain_as_simulated"] == pytest.approx((2.0 + 0.5 + 4.0 + 2.0) / 4 / 2.0 - 1.0, rel=1e-12)
    assert a["n_viable"] == 3 and a["n_responses"] == 4


def test_experiment_settings_checked():
    with pytest.raises(ValueError, match="concentration_folds"):
        ClosenessSettings(concentration_folds=(1.0, 3.0))
    with pytest.raises(ValueError, match="perturbation"):
        RobustnessSettings(perturbation=1.0)
    assert RobustnessSettings().n_draws == 10 and ClosenessSettings().concentration_folds == (2.0, 3.0, 10.0, 20.0)


TOML = """
[nomad]
output_dir = "{ens}"

[nomad.design]
max_models = 2
n_workers = 1

[nomad.design.nra]
max_interventions = 2
max_designs = 2

[nomad.design.ranking]
top_n = 2

[nomad.design.verification]
batch_time = 6.0
n_points = 7
"""


@pytest.mark.slow
def test_experiment_command_end_to_end(ensemble_dir, tmp_path):
    """``mpc-bio nomad experiment all`` on two models writes the three JSON results, tables and
    figures; the closeness groups carry their own bound and the strains their medians."""
    from mpc_bio.cli import main

    cfg = tmp_path / "scenario.toml"
    cfg.write_text(TOML.format(ens=str(ensemble_dir)))
    out = tmp_path / "exp"
    args = ["nomad", "experiment", "all", str(cfg), "--out", str(out), "--no-progress", "--folds", "2", "20"]
    assert main(args + ["--batch-time", "8", "--n-draws", "1", "--top-n", "1"]) == 0
    for name in ("closeness.json", "strains.json", "sensitivity.json", "closeness_verification.csv", "sensitivity.csv"):
        assert (out / name).is_file(), name
    for name in ("closeness_time_courses", "closeness_groups", "strains_titers", "sensitivity_fractions", "sensitivity_d1"):
        assert (out / "figures" / f"{name}.png").is_file(), name
    # the NRA enumerations (2 models at the design stage's bound, and at each of the 2 closeness
    # bounds) and the ranking stay in the ensemble's design cache; the finished verification and
    # sensitivity tasks were kept in .exp.checkpoint only until the output was complete
    cache = ensemble_dir / ".design_cache"
    assert len(list(cache.glob("enumerate_model_designs-*.pkl"))) == 2 + 2 * 2 and len(list(cache.glob("rank_designs-*.pkl"))) == 1
    assert not (tmp_path / ".exp.checkpoint").exists()
    close = json.loads((out / "closeness.json").read_text())
    assert set(close["groups"]) == {"2-fold", "20-fold", "MCA"}
    assert close["groups"]["2-fold"]["viability_rule"] == {"concentration_fold": 2.0, "min_growth_ratio": 0.8}
    strains = json.loads((out / "strains.json").read_text())
    assert strains["strains"]["reference"]["n_viable"] == 2
    # the small test network has no phenylalanine: both experimental strains are left out, and said so
    assert set(strains["skipped_strains"]) == {"aroGfbr", "aroGfbr_tktA"}
    assert "phe__L_c" in strains["skipped_strains"]["aroGfbr"]
    assert set(strains["median_titer_g_per_l"]) == {"reference", strains["designs"][0]}


@pytest.mark.slow
def test_verification_in_worker_processes_equals_in_process(stable_model):
    """n_workers=2 gives the same time courses and viability as one process (exact: the same
    CVODES calls on the same inputs)."""
    ens, i = stable_model
    net = ens.network
    fold = np.ones(net.n_reactions)
    fold[net.reaction_index("DDPA")] = 1.3
    vs = VerificationSettings(batch_time=3.0, n_points=7)
    strains = {"d": fold[None, :]}
    a = verify_strains(ens, [i], strains, settings=vs, n_workers=2)
    b = verify_strains(ens, [i], strains, settings=vs, n_workers=1)
    np.testing.assert_array_equal(a.product, b.product)
    np.testing.assert_array_equal(a.valid, b.valid)
