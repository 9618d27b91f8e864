"""Which reactions the mass-balance map pins as constants, and the training's time limit.

A toy network in closed form: uptake x of A (0-1000 mmol/gDW/h); growth BIO consumes A and a trace
eps of C; TR makes C from A; RP turns A into a product P secreted by EX_P; BLK turns A into a dead
end D (zero at every solution). The data: BIO = 0.6 x / (1 + eps), TR = eps BIO, RP = EX_P = 0.4 x,
BLK = 0 (mass balance leaves one free direction: growth against the product). With eps = 1e-8 the
trace flux's range (6e-6) is below 1e-7 of the largest range (1000), the old pinning rule: pinned
at its mean it pins growth through S v = 0 (the bug seen on iJO1366, growth predicted 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from mpc_bio.metabolism.dataset import FluxDataset
from mpc_bio.surrogate import train_surrogate
from mpc_bio.surrogate.settings import SurrogateSettings
from mpc_bio.surrogate.training import _pin_constant_reactions

EPS = 1e-8
RIDS = ("EX_A", "BIO", "TR", "BLK", "RP", "EX_P")
METS = ("A", "C", "D", "P")
#: columns as RIDS; rows A, C, D, P (exchanges: uptake is a negative flux, secretion positive)
S = np.array(
    [
        [-1.0, -1.0, -1.0, -1.0, -1.0, 0.0],
        [0.0, -EPS, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, -1.0],
    ]
)


def _toy_dataset(n: int = 200, noise: float = 0.0) -> FluxDataset:
    x = np.linspace(0.0, 1000.0, n)[:, None]
    bio = 0.6 * x[:, 0] / (1.0 + EPS)
    V = np.column_stack([-x[:, 0], bio, EPS * bio, np.zeros(n), 0.4 * x[:, 0], 0.4 * x[:, 0]])
    V[:, 3] += noise * np.sin(np.arange(n))  # round-off-sized wiggle on the blocked reaction
    return FluxDataset(
        inputs=x,
        fluxes=V,
        split_fluxes=np.hstack([np.maximum(V, 0), np.maximum(-V, 0)]),
        growth=bio,
        status=np.zeros(n, dtype=np.int8),
        slacks=np.zeros((n, 0)),
        input_names=("a",),
        input_reactions=("EX_A",),
        reaction_ids=RIDS,
        metabolite_ids=METS,
        slack_names=(),
        objective_id="BIO",
        stoichiometry=sp.csr_matrix(S),
        model_id="toy",
        model_hash="toy",
    )


def _pin(ds: FluxDataset, old_pinned=None):
    V, X = ds.fluxes, ds.inputs
    rng = np.ptp(V, axis=0)
    floor = np.maximum(rng, 1e-3 * rng.max())
    return _pin_constant_reactions(ds.stoichiometry, V, X, np.array([0]), True, rng, floor, floor, RIDS, old_pinned, 0)


def test_trace_flux_tied_to_growth_is_not_pinned_but_a_blocked_one_is():
    """The trace flux TR (range 6e-6, 6e-9 of the largest) varies with growth: not pinned; the
    blocked BLK (exactly 0, or 1e-13 round-off) is pinned to 0; the map then reproduces the closed-
    form fluxes BIO = 0.6 x / (1 + eps) and TR = eps BIO at every point (abs 1e-9 mmol/gDW/h, rel 1e-12;
    the projection is a float64 SVD). The old rule (1e-7 of the largest range) would pin TR, and
    that map moves growth by its whole range: recorded as the first rule tried and rejected."""
    for noise in (0.0, 1e-13):
        ds = _toy_dataset(noise=noise)
        const, vals, proj, info = _pin(ds)
        assert [RIDS[j] for j in const] == ["BLK"]
        np.testing.assert_allclose(vals, [0.0], rtol=0, atol=1e-12)
        P = proj.apply(ds.fluxes, ds.inputs)
        x = ds.inputs[:, 0]
        np.testing.assert_allclose(P[:, 1], 0.6 * x / (1 + EPS), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(P[:, 2], EPS * 0.6 * x / (1 + EPS), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(P[:, 3], 0.0, rtol=0, atol=1e-9)
        first = info["tried"][0]
        assert first["n_pinned"] == 2 and first["max_displacement_frac"] > 0.5  # TR and BLK pinned: growth forced
        assert info["rule"].startswith("range <= 2 max|S v|")


def test_warm_start_keeps_the_init_pinned_set_when_it_is_the_first_rule():
    """An artifact trained under the old rule records TR and BLK as pinned; warm-starting from it on
    the same data keeps that set (its map is reproduced; no check); another recorded set is ignored."""
    ds = _toy_dataset()
    const, _, _, info = _pin(ds, old_pinned=["TR", "BLK"])
    assert sorted(RIDS[j] for j in const) == ["BLK", "TR"] and info.get("kept_from_init")
    const, _, _, info = _pin(ds, old_pinned=["BLK"])
    assert [RIDS[j] for j in const] == ["BLK"] and not info.get("kept_from_init")


def test_trained_toy_predicts_growth_not_zero():
    """Trained on the toy data (2 x 16 net, 150 epochs, seed 0), the surrogate's growth follows
    0.6 x / (1 + eps) within 5 % of its maximum (600) at fresh points, and the mass balance holds
    exactly (TR = eps BIO, abs 1e-9); under the old rule growth was forced to one constant."""
    ds = _toy_dataset()
    s = SurrogateSettings(hidden=(16, 16), epochs=150, batch_size=64, seed=0, num_threads=1, device="cpu")
    sur = train_surrogate(ds, s, progress=False)
    assert sur.info["pinned_constant_reactions"] == ["BLK"]
    x = np.array([[37.0], [250.0], [512.5], [900.0]])
    P = sur.predict(x, check_domain=False)
    np.testing.assert_allclose(P[:, 1], 0.6 * x[:, 0] / (1 + EPS), rtol=0, atol=0.05 * 600)
    np.testing.assert_allclose(P[:, 2], EPS * P[:, 1], rtol=1e-9, atol=1e-9)


def test_time_limit_runs_both_stages_and_records_the_split(small_dataset, small_settings):
    """With a time limit and far more epochs than fit, both stages run and end on the time (at
    least one epoch each, fewer than asked), the split recorded in ``info["time_limit"]`` in the
    ratio of the epochs (3 : 1, rel 1e-9). No wall-clock assertion: only which stages ran."""
    s = dataclasses.replace(small_settings, epochs=300_000, finetune_epochs=100_000, patience=10**6, finetune_power=8, lbfgs_steps=0)
    sur = train_surrogate(small_dataset, s, progress=False, time_limit_s=6.0)
    tl = sur.info["time_limit"]
    assert 1 <= sur.info["adam_epochs"] < 300_000
    assert 1 <= sur.info["finetune_epochs_run"] < 100_000
    np.testing.assert_allclose(tl["adam_s"] / tl["finetune_s"], 3.0, rtol=1e-9, atol=0)
    assert "interrupted" not in sur.info
