"""A small trained surrogate against independent references: fresh pFBA, finite differences, numpy rebuild."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mpc_bio.metabolism.models import load_model
from mpc_bio.metabolism.pfba import PFBASolver
from mpc_bio.surrogate import SurrogateModule, compute_metrics, train_surrogate, training
from mpc_bio.surrogate.projection import mass_balance_residual

from .conftest import reference_fluxes


def _flux_range(V: np.ndarray) -> np.ndarray:
    """Each reaction's range over the points, floored at 1e-3 mmol/gDW/h as in compute_metrics."""
    return np.maximum(V.max(axis=0) - V.min(axis=0), 1e-3)


@pytest.fixture(scope="module")
def fresh_reference(small_surrogate):
    """pFBA solved fresh at 150 random off-grid points (never training data)."""
    rng = np.random.default_rng(7)
    X = rng.uniform(small_surrogate.domain_low, small_surrogate.domain_high, size=(150, 2))
    solver = PFBASolver(load_model("e_coli_core"))
    V = np.array([solver.solve(x).fluxes for x in X])
    return X, V


def test_small_surrogate_matches_fresh_pfba(small_surrogate, fresh_reference):
    """Loose accuracy of a 2 x 32 net trained for seconds on a coarse 1 mmol/gDW/h grid: growth
    within 6% of the maximum growth rate, median reaction R^2 >= 0.99 (measured 3.9% / 0.996;
    the shipped default, trained on the 0.1 grid, is checked against tighter targets)."""
    X, V = fresh_reference
    m = compute_metrics(small_surrogate, X, V)
    assert m.growth_max_abs_err_frac <= 0.06
    assert m.median_r2 >= 0.99
    # per point: the largest error over reactions relative to each reaction's range (exact, rtol 1e-12)
    per_point = (np.abs(small_surrogate.predict(X) - V) / _flux_range(V)).max(axis=1)
    np.testing.assert_allclose(m.point_max_err_frac, per_point, rtol=1e-12, atol=0)
    np.testing.assert_allclose(m.point_max_err_frac.max(), m.worst_reaction_max_err_frac, rtol=1e-12, atol=0)
    assert m.summary()["points_within_2pct"] == int(np.sum(per_point <= 0.02)) < len(X)
    chunked = compute_metrics(small_surrogate, X, V, chunk_size=7)  # 150 points in 22 chunks: same numbers
    for field in ("mae", "max_abs_err", "max_err_frac", "point_max_err_frac", "r2"):
        np.testing.assert_allclose(getattr(chunked, field), getattr(m, field), rtol=1e-12, atol=1e-15)
    # the projected residual is round-off (batch size changes BLAS summation order); the bare net's is O(1)
    assert max(chunked.mass_balance_residual, m.mass_balance_residual) <= 1e-11
    np.testing.assert_allclose(chunked.mass_balance_residual_unprojected, m.mass_balance_residual_unprojected, rtol=1e-9, atol=0)
    np.testing.assert_allclose(m.mae, np.abs(small_surrogate.predict(X) - V).mean(axis=0), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="'chunk_size'"):
        compute_metrics(small_surrogate, X, V, chunk_size=0)
    g = small_surrogate.predict_growth(X)
    np.testing.assert_allclose(g, V[:, small_surrogate.growth_index], rtol=0, atol=0.06 * m.max_growth)


def test_mass_balance_with_and_without_layer(small_dataset, small_surrogate, small_settings, fresh_reference):
    X, _ = fresh_reference
    S = small_dataset.stoichiometry
    assert mass_balance_residual(S, small_surrogate.predict(X)) <= 1e-9
    # the bare network (before the projection) does not conserve mass
    assert mass_balance_residual(S, small_surrogate.unprojected(X)) > 1e-4
    free = train_surrogate(small_dataset, dataclasses.replace(small_settings, mass_balance=False, epochs=20, lbfgs_steps=0), progress=False)
    assert mass_balance_residual(S, free.predict(X)) > 1e-4
    assert np.array_equal(free.spec().in_matrix, np.zeros_like(free.spec().in_matrix))


def test_autograd_sensitivity_matches_finite_differences(small_surrogate):
    rng = np.random.default_rng(3)
    X = rng.uniform(1.0, 19.0, size=(20, 2))
    G = small_surrogate.growth_sensitivity(X)
    h = 1e-5
    fd = np.empty_like(G)
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd[:, j] = (small_surrogate.predict_growth(X + e) - small_surrogate.predict_growth(X - e)) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-8)
    # the full Jacobian agrees with the growth row
    J = small_surrogate.jacobian(X[:3])
    np.testing.assert_allclose(J[:, small_surrogate.growth_index, :], G[:3], rtol=1e-12, atol=1e-14)


def test_spec_rebuilt_in_numpy_equals_module(small_surrogate):
    spec = small_surrogate.spec()
    X = np.random.default_rng(4).uniform(0, 20, size=(64, 2))
    v = reference_fluxes(spec, X)  # independent numpy forward
    with torch.no_grad():
        t = small_surrogate.module(torch.as_tensor(X, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(t, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X), v, rtol=0, atol=1e-12)
    # batched predict (> 64 points) runs the fused torch module: same map to round-off
    Xb = np.random.default_rng(5).uniform(0, 20, size=(300, 2))
    with torch.no_grad():
        tb = small_surrogate.module(torch.as_tensor(Xb)).numpy()
    np.testing.assert_allclose(small_surrogate.predict(Xb), tb, rtol=0, atol=1e-12)
    assert mass_balance_residual(small_surrogate.stoichiometry, small_surrogate.predict(Xb)) <= 1e-9
    rebuilt = SurrogateModule.from_spec(spec)
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(torch.as_tensor(X)).numpy(), t, rtol=0, atol=0)


def test_training_is_deterministic(small_dataset, small_settings):
    s = dataclasses.replace(small_settings, epochs=5, lbfgs_steps=0)
    a = train_surrogate(small_dataset, s, progress=False)
    b = train_surrogate(small_dataset, s, progress=False)
    X = np.array([[5.0, 5.0], [12.3, 7.7]])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_split_target_trains_and_balances(small_dataset, small_settings):
    s = dataclasses.replace(small_settings, target="split", epochs=10, lbfgs_steps=0)
    sur = train_surrogate(small_dataset, s, progress=False)
    r = len(sur.reaction_ids)
    assert sur.spec().y_offset.shape == (2 * r,)
    assert sur.spec().out_matrix.shape == (r, 2 * r)
    X = np.array([[5.0, 5.0], [12.3, 7.7]])
    assert mass_balance_residual(small_dataset.stoichiometry, sur.predict(X)) <= 1e-9


def test_lp_fine_tuning_lowers_the_worst_error(small_dataset, small_settings):
    """The L^8 fine-tuning stage targets the largest scaled errors: after it, the largest error over
    the training points (in units of each reaction's range) is smaller than after the mean-squared
    stage alone (same seed, same first stage; no L-BFGS so the two differ only by the stage)."""
    base = dataclasses.replace(small_settings, epochs=100, lbfgs_steps=0)
    tuned = dataclasses.replace(base, finetune_epochs=100, finetune_power=8, finetune_batch_size=128)
    a = train_surrogate(small_dataset, base, progress=False)
    b = train_surrogate(small_dataset, tuned, progress=False)
    X, V = small_dataset.inputs, small_dataset.fluxes
    scale = _flux_range(V)
    worst = lambda s: float((np.abs(s.predict(X) - V) / scale).max())
    assert worst(b) < worst(a)
    assert b.info["finetune_val_loss_after"] <= b.info["finetune_val_loss_before"]
    assert mass_balance_residual(small_dataset.stoichiometry, b.predict(X)) <= 1e-9


def test_reaction_weights_buy_accuracy_on_the_named_reaction(small_dataset, small_settings):
    """``reaction_weights``: the reaction with the largest root-mean-square training error of a
    plain run (in units of its range; same seed and data, no L-BFGS) gets weight 50; after
    retraining, its root-mean-square error over the training points is smaller. Naming an unknown
    reaction or the objective (which has ``growth_weight``) is refused with the parameter named."""
    base = dataclasses.replace(small_settings, epochs=100, lbfgs_steps=0)
    X, V = small_dataset.inputs, small_dataset.fluxes
    scale = _flux_range(V)
    rms = lambda s: np.sqrt((((s.predict(X) - V) / scale) ** 2).mean(axis=0))  # noqa: E731
    plain = rms(train_surrogate(small_dataset, base, progress=False))
    plain[small_dataset.reaction_ids.index(small_dataset.objective_id)] = 0.0
    j = int(np.argmax(plain))
    rid = small_dataset.reaction_ids[j]
    weighted = rms(train_surrogate(small_dataset, dataclasses.replace(base, reaction_weights={rid: 50.0}), progress=False))
    assert weighted[j] < plain[j]
    for bad in ({"NOT_A_REACTION": 2.0}, {small_dataset.objective_id: 2.0}):
        with pytest.raises(ValueError, match="'reaction_weights'"):
            train_surrogate(small_dataset, dataclasses.replace(base, reaction_weights=bad, epochs=1), progress=False)


@pytest.mark.parametrize("power", [2, 8])
def test_chunked_lbfgs_equals_one_graph(small_dataset, small_settings, monkeypatch, power):
    """The full-batch L-BFGS loss and gradient are summed over chunks of points so memory stays
    bounded; with chunks of 50 points the result equals the single-graph one (chunk larger than the
    data): 30 L-BFGS steps apart only by round-off, 1e-7 of the largest flux absolute, rel 0."""
    s = dataclasses.replace(small_settings, epochs=20, lbfgs_steps=30, finetune_power=power)
    out = []
    for chunk in (10**9, 50):
        monkeypatch.setattr(training, "_FULL_BATCH_CHUNK", chunk)
        out.append(train_surrogate(small_dataset, s, progress=False).predict(small_dataset.inputs))
    np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-7 * np.abs(out[0]).max())


def test_failed_lbfgs_keeps_the_adam_weights(small_dataset, small_settings, monkeypatch):
    """An L-BFGS stage that raises (here: its step made to raise RuntimeError, as a GPU out-of-memory
    does) warns, records the error and returns the Adam result unchanged (1e-12 of the largest flux
    absolute, rel 0, against the same run without L-BFGS)."""
    s = dataclasses.replace(small_settings, epochs=10)
    plain = train_surrogate(small_dataset, dataclasses.replace(s, lbfgs_steps=0), progress=False)

    def out_of_memory(self, closure):
        raise RuntimeError("CUDA out of memory (raised by the test)")

    monkeypatch.setattr(torch.optim.LBFGS, "step", out_of_memory)
    with pytest.warns(RuntimeWarning, match="L-BFGS stopped"):
        kept = train_surrogate(small_dataset, s, progress=False)
    assert "out of memory" in kept.info["lbfgs_error"]
    ref = plain.predict(small_dataset.inputs)
    np.testing.assert_allclose(kept.predict(small_dataset.inputs), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_training_data_metrics_are_the_errors_on_every_point(small_dataset, small_surrogate):
    """``metrics["training_data"]``: the worst reaction's max error over all training points in units
    of its range (floor 1e-3), recomputed here in numpy from the predictions (rel 1e-12, abs 0)."""
    X, V = small_dataset.inputs, small_dataset.fluxes
    frac = np.abs(small_surrogate.predict(X) - V).max(axis=0) / _flux_range(V)
    m = small_surrogate.metrics["training_data"]
    assert m["n_points"] == len(X)
    assert m["worst_reaction"] == small_dataset.reaction_ids[int(np.argmax(frac))]
    assert m["worst_reaction_max_err_frac"] == pytest.approx(frac.max(), rel=1e-12, abs=0)


def test_range_metric_projection_balances(small_dataset, small_settings):
    s = dataclasses.replace(small_settings, projection_metric="range", epochs=5, lbfgs_steps=0)
    sur = train_surrogate(small_dataset, s, progress=False)
    X = np.array([[5.0, 5.0], [12.3, 7.7], [0.3, 19.0]])
    assert mass_balance_residual(small_dataset.stoichiometry, sur.predict(X)) <= 1e-9


@pytest.mark.parametrize("activation", ["silu", "tanh", "softplus"])
def test_sharpness_folds_into_plain_weights(activation):
    """act(beta a)/beta layers equal the plain activation with beta folded into the weights:
    the module with sharpness 25 and the module rebuilt (sharpness 1) from its spec agree to 1e-12
    absolute (float64, outputs of order 1..100), and loading the spec back into a sharpened module
    restores its weights to 1e-12 relative."""
    torch.manual_seed(3)
    k, r = 2, 6
    mod = SurrogateModule(k, (8, 7, 5), r, r, activation, sharpness=25.0).double()
    with torch.no_grad():
        mod.x_scale.fill_(10.0)
        mod.y_scale.uniform_(0.5, 30.0)
        mod.out_matrix.copy_(torch.eye(r, dtype=torch.float64))
    X = torch.as_tensor(np.random.default_rng(1).uniform(0, 20, size=(50, k)))
    spec = mod.to_spec()
    plain = SurrogateModule.from_spec(spec)
    assert plain.sharpness == 1.0
    with torch.no_grad():
        ref = mod(X).numpy()
        np.testing.assert_allclose(plain(X).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X.numpy()), ref, rtol=0, atol=1e-12)
    back = SurrogateModule(k, (8, 7, 5), r, r, activation, sharpness=25.0).double()
    back.load_spec(spec)
    for a, b in zip(back.core.parameters(), mod.core.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_sharpened_training_saves_plain_activation(small_dataset, small_settings):
    """Training with activation_sharpness = 10 gives an artifact whose spec uses the plain SiLU
    (module and numpy spec agree to 1e-12) and records the setting."""
    s = dataclasses.replace(small_settings, activation_sharpness=10.0, epochs=5, lbfgs_steps=0)
    sur = train_surrogate(small_dataset, s, progress=False)
    X = np.random.default_rng(2).uniform(0, 20, size=(20, 2))
    with torch.no_grad():
        t = sur.module(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(sur.spec().evaluate(X), t, rtol=0, atol=1e-12)
    assert sur.settings.activation_sharpness == 10.0
    with pytest.raises(ValueError, match="activation_sharpness"):
        dataclasses.replace(small_settings, activation_sharpness=0.0)


def test_input_warp_training_round_trip(small_dataset, small_settings, tmp_path):
    """Training with input_knees: the first layer sees [z, (asinh(x/knee) - off)/scale]; an
    independent numpy rebuild from the spec's raw arrays, the torch module, the numpy fast path
    (single point and batch), the fused torch batch (float64 and mixed) and a saved-and-loaded copy
    agree (1e-12 absolute in float64; mixed 1e-5 of the largest flux). The warped features span
    [-1, 1] over the training inputs."""
    from mpc_bio.surrogate import load_surrogate

    s = dataclasses.replace(small_settings, input_knees=(0.5, 0.5), activation_sharpness=10.0, epochs=5, lbfgs_steps=0)
    sur = train_surrogate(small_dataset, s, progress=False)
    spec = sur.spec()
    assert spec.warped and spec.layers[0][0].shape[1] == 4
    F = (np.arcsinh(small_dataset.inputs / spec.warp_knee) - spec.warp_offset) / spec.warp_scale
    np.testing.assert_allclose(F.min(axis=0), -1.0, atol=1e-12)
    np.testing.assert_allclose(F.max(axis=0), 1.0, atol=1e-12)

    X = np.vstack([[0.0, 0.0], [0.05, 19.0], np.random.default_rng(4).uniform(0, 20, size=(200, 2))])
    ref = reference_fluxes(spec, X)
    with torch.no_grad():
        np.testing.assert_allclose(sur.module(torch.as_tensor(X)).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X[1]), ref[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sur.predict(X, check_domain=False), ref, rtol=0, atol=1e-12)
    big = np.abs(ref).max()
    np.testing.assert_allclose(sur.predict(X, check_domain=False, precision="mixed"), ref, rtol=0, atol=1e-5 * big)
    loaded = load_surrogate(sur.save(tmp_path / "warped"))
    np.testing.assert_array_equal(loaded.spec().warp_knee, spec.warp_knee)
    np.testing.assert_allclose(loaded.predict(X, check_domain=False), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="input_knees"):
        dataclasses.replace(small_settings, input_knees=(0.5, -1.0))
    with pytest.raises(ValueError, match="input_knees"):
        train_surrogate(small_dataset, dataclasses.replace(small_settings, input_knees=(0.5,), epochs=1), progress=False)


def test_warm_start_continues_from_the_given_weights(small_dataset, small_settings):
    """``init``: one epoch at a vanishing learning rate (1e-12) returns the init's function (its
    float64 weights pass through float32 training: 1e-5 of the largest flux absolute, rel 0), with
    sharpness 10 and the input warp so both are unfolded and refolded; 20 more epochs at the normal
    rate lower the init's validation loss (same seed, same held-out points); with no Adam stage
    (epochs 0) the fine-tuning starts from the init itself; an init trained on other data or with
    another architecture is refused with the parameter named."""
    s = dataclasses.replace(small_settings, input_knees=(0.5, 0.5), activation_sharpness=10.0, epochs=20, lbfgs_steps=0)
    first = train_surrogate(small_dataset, s, progress=False)
    X = np.vstack([[0.05, 19.0], np.random.default_rng(7).uniform(0, 20, size=(100, 2))])
    ref = first.predict(X, check_domain=False)
    frozen = train_surrogate(small_dataset, dataclasses.replace(s, epochs=1, lr=1e-12), init=first, progress=False)
    np.testing.assert_allclose(frozen.predict(X, check_domain=False), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert frozen.info["warm_start"]["adam_epochs"] == 20
    assert frozen.info["warm_start"]["settings"] == s.to_dict()  # the stage it continues, recorded
    # epochs = 0: no Adam stage, the fine-tuning starts from the init itself (same tolerance)
    only_ft = train_surrogate(
        small_dataset, dataclasses.replace(s, epochs=0, finetune_epochs=1, finetune_power=4, lr=1e-12), init=first, progress=False
    )
    np.testing.assert_allclose(only_ft.predict(X, check_domain=False), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert only_ft.info["adam_epochs"] == 0 and only_ft.info["best_epoch"] == -1
    assert only_ft.info["finetune_epochs_run"] == 1
    more = train_surrogate(small_dataset, s, init=first, progress=False)
    assert more.info["adam_best_val_loss"] < first.info["adam_best_val_loss"]
    with pytest.raises(ValueError, match="'init'.*hidden"):
        train_surrogate(small_dataset, dataclasses.replace(s, hidden=(16, 16)), init=first, progress=False)
    with pytest.raises(ValueError, match="'init'.*reactions"):
        train_surrogate(dataclasses.replace(small_dataset, model_hash="other"), s, init=first, progress=False)


def _rows(dataset, keep):
    """``dataset`` restricted to the rows ``keep``."""
    arrays = ("inputs", "fluxes", "split_fluxes", "growth", "status", "slacks")
    return dataclasses.replace(dataset, **{f: getattr(dataset, f)[keep] for f in arrays})


def test_warm_start_on_other_data_of_the_same_domain(small_dataset, small_settings):
    """``init`` trained on part of the data continues on all of it (other output scaling, absorbed
    into the last layer): one epoch at a vanishing rate returns the init's function (1e-5 of the
    largest flux absolute, rel 0) and the init's data hash is recorded; data over another domain
    (other input scaling), or with flux in a reaction the init's data never used (another
    mass-balance map), are refused with the map and the reaction named."""
    s = dataclasses.replace(small_settings, input_knees=(0.5, 0.5), activation_sharpness=10.0, epochs=20, lbfgs_steps=0)
    X = small_dataset.inputs
    part = _rows(small_dataset, (X[:, 0] <= 1) | (X[:, 0] >= 19) | (X[:, 1] % 2 == 0))  # corners kept: same domain
    first = train_surrogate(part, s, progress=False)
    assert first.training_data_hash != small_dataset.content_hash()
    assert not np.allclose(first.spec().y_scale, np.std(small_dataset.fluxes, axis=0))  # scaling does change
    P = np.random.default_rng(5).uniform(0, 20, size=(100, 2))
    ref = first.predict(P, check_domain=False)
    frozen = train_surrogate(small_dataset, dataclasses.replace(s, epochs=1, lr=1e-12), init=first, progress=False)
    np.testing.assert_allclose(frozen.predict(P, check_domain=False), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert frozen.info["warm_start"]["training_data_hash"] == first.training_data_hash
    with pytest.raises(ValueError, match="'init'.*x_offset.*domain"):
        train_surrogate(_rows(small_dataset, X[:, 0] <= 15), s, init=first, progress=False)
    # a reaction constant over the init's data (pinned by its mass-balance map) that is not over the
    # new data: the other map is refused and the reaction named
    blocked = "FBP"  # zero on every point; unpinned, it can carry flux in the null space of S (with PFK)
    assert blocked in first.info["pinned_constant_reactions"]
    F = small_dataset.fluxes.copy()
    F[0, small_dataset.reaction_ids.index(blocked)] = 1e-3
    with pytest.raises(ValueError, match=rf"'init'.*mass-balance map.*not over these: \['{blocked}'\]"):
        train_surrogate(dataclasses.replace(small_dataset, fluxes=F), s, init=first, progress=False)


def test_wider_hidden_widens_the_init_without_changing_its_function(small_dataset, small_settings):
    """``init`` with wider ``hidden``: the new neurons get zero outgoing weights, so one epoch at a
    vanishing rate (1e-12) returns the init's function (1e-5 of the largest flux absolute, rel 0,
    float32 training) with the extra neurons present (their incoming weights random, not zero);
    20 epochs at the normal rate then lower the init's validation loss; fewer or more layers, or a
    narrower layer, are refused with the parameter named."""
    s = dataclasses.replace(small_settings, hidden=(16, 16), activation_sharpness=10.0, epochs=20, lbfgs_steps=0)
    first = train_surrogate(small_dataset, s, progress=False)
    X = np.random.default_rng(3).uniform(0, 20, size=(100, 2))
    ref = first.predict(X, check_domain=False)
    wide = dataclasses.replace(s, hidden=(24, 16))
    frozen = train_surrogate(small_dataset, dataclasses.replace(wide, epochs=1, lr=1e-12), init=first, progress=False)
    assert frozen.spec().hidden == (24, 16)
    np.testing.assert_allclose(frozen.predict(X, check_domain=False), ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    (W1, _), (W2, _), _ = frozen.spec().layers
    assert np.abs(W1[16:]).min() > 0  # new neurons: random incoming weights
    np.testing.assert_allclose(W2[:, 16:], 0.0, rtol=0, atol=1e-9)  # ... that nothing reads yet
    assert frozen.info["warm_start"]["settings"]["hidden"] == [16, 16]
    more = train_surrogate(small_dataset, wide, init=first, progress=False)
    assert more.info["adam_best_val_loss"] < first.info["adam_best_val_loss"]
    for hidden in ((16,), (16, 16, 16), (24, 8)):
        with pytest.raises(ValueError, match="'init'.*hidden"):
            train_surrogate(small_dataset, dataclasses.replace(s, hidden=hidden), init=first, progress=False)


def _interrupt_adam_at(monkeypatch, call: int) -> None:
    """Make the ``call``-th Adam step (1-based, counted over all optimisers) raise KeyboardInterrupt, as Ctrl-C does."""
    real = torch.optim.Adam.step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_ctrl_c_keeps_the_best_weights_so_far(small_dataset, small_settings, monkeypatch):
    """Ctrl-C in the third Adam epoch: a RuntimeWarning, the fine-tuning and L-BFGS stages skipped,
    and the surrogate equals a run that ends normally after two epochs (constant learning rate, so
    both runs take the same steps): 1e-12 of the largest flux absolute, rel 0. Ctrl-C during the
    fine-tuning keeps the best fine-tuned weights, equal to a run with one fine-tuning epoch; at the
    first step of a warm start, the init itself."""
    s = dataclasses.replace(small_settings, epochs=10, patience=10, lr_final_ratio=1.0, finetune_epochs=5, finetune_power=4, lbfgs_steps=20)
    steps = -(-int(round(0.9 * small_dataset.n_points)) // s.batch_size)  # Adam steps per epoch
    X = small_dataset.inputs
    _interrupt_adam_at(monkeypatch, 2 * steps + 3)
    with pytest.warns(RuntimeWarning, match="interrupted during adam"):
        cut = train_surrogate(small_dataset, s, progress=False)
    monkeypatch.undo()
    assert cut.info["interrupted"] == {"stage": "adam", "epoch": 2, "best_epoch": cut.info["best_epoch"]}
    assert cut.info["best_epoch"] in (0, 1) and cut.info["adam_epochs"] == 3
    assert "finetune_val_loss_before" not in cut.info and "lbfgs_val_loss_before" not in cut.info
    assert cut.metrics["validation"]["n_points"] > 0  # finished as usual
    two = train_surrogate(small_dataset, dataclasses.replace(s, epochs=2, finetune_epochs=0, lbfgs_steps=0), progress=False)
    ref = two.predict(X)
    np.testing.assert_allclose(cut.predict(X), ref, rtol=0, atol=1e-12 * np.abs(ref).max())

    # Ctrl-C at the very first step of a warm start: the init comes back (through float32: 1e-5 of the largest flux)
    _interrupt_adam_at(monkeypatch, 1)
    with pytest.warns(RuntimeWarning, match="interrupted during adam"):
        start = train_surrogate(small_dataset, s, init=two, progress=False)
    monkeypatch.undo()
    assert start.info["best_epoch"] == -1 and np.isfinite(start.info["adam_best_val_loss"])
    np.testing.assert_allclose(start.predict(X), ref, rtol=0, atol=1e-5 * np.abs(ref).max())

    s2 = dataclasses.replace(s, epochs=2, lbfgs_steps=0)
    ft_steps = -(-int(round(0.9 * small_dataset.n_points)) // min(s.finetune_batch_size, small_dataset.n_points))
    _interrupt_adam_at(monkeypatch, 2 * steps + ft_steps + 1)  # first step of the second fine-tuning epoch
    with pytest.warns(RuntimeWarning, match=r"interrupted during fine-tune L\^4"):
        cut_ft = train_surrogate(small_dataset, s2, progress=False)
    monkeypatch.undo()
    assert cut_ft.info["interrupted"]["stage"] == "fine-tune L^4" and cut_ft.info["interrupted"]["epoch"] == 1
    one_ft = train_surrogate(small_dataset, dataclasses.replace(s2, finetune_epochs=1), progress=False)
    ref = one_ft.predict(X)
    np.testing.assert_allclose(cut_ft.predict(X), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_kink_features(small_dataset, small_settings, tmp_path):
    """``kink_lines``: the first layer also sees, per line a . x = c, the bump d softplus(t / d) - w
    softplus(t / w) of the signed distance t = (a . x - c) / |a| (w = kink_width, d = kink_reach),
    scaled to peak kink_gain g on the line (checked against that formula written out, 1e-12 abs;
    below 1e-9 g 25 reaches away: it decays as exp(-|t| / d)); every evaluation path equals the independent numpy forward
    (1e-12 abs; mixed precision 1e-5 of the largest flux), also after a save/load round trip. A warm
    start from a net without kink features, or with the leading one of them, adds the others with zero
    weights: one epoch at a vanishing rate (1e-12) returns the init's function (1e-5 of the largest
    flux, rel 0). Bad lines, lines of the
    wrong length and an init with other kink settings are refused, naming the parameter."""
    from mpc_bio.surrogate import load_surrogate

    lines, w, d, g = ((1.0, -1.0, 0.0), (0.0, 2.0, 3.0)), 0.05, 0.5, 3.0  # glucose = oxygen; oxygen = 1.5
    s0 = dataclasses.replace(small_settings, input_knees=(0.5, 0.5), activation_sharpness=10.0, epochs=20, lbfgs_steps=0)
    s = dataclasses.replace(s0, kink_lines=lines, kink_width=w, kink_reach=d, kink_gain=g)
    X = np.vstack([[0.0, 0.0], [3.0, 3.0], [0.05, 1.5], [10.0, 1.5 + 25 * d], np.random.default_rng(4).uniform(0, 20, size=(200, 2))])
    t = np.column_stack([(X[:, 0] - X[:, 1]) / np.sqrt(2.0), X[:, 1] - 1.5])  # signed distances (mmol/gDW/h)

    sur = train_surrogate(small_dataset, dataclasses.replace(s, epochs=5), progress=False)
    spec = sur.spec()
    assert spec.n_kinks == 2 and spec.layers[0][0].shape[1] == 6
    bump = d * np.log1p(np.exp(t / d)) - w * np.log1p(np.exp(t / w))  # mmol/gDW/h
    np.testing.assert_allclose(spec.features(X)[:, 4:] * w, bump, rtol=0, atol=1e-12)
    scaled = spec.features(X)[:, 4:] / spec.kink_scale
    assert scaled[1, 0] == pytest.approx(g, abs=1e-12) and scaled[2, 1] == pytest.approx(g, abs=1e-12)  # on the lines
    assert 0.0 <= scaled.min() and scaled.max() <= g + 1e-12 and scaled[3, 1] <= 1e-9 * g  # 25 reaches away
    ref = reference_fluxes(spec, X)
    big = np.abs(ref).max()
    with torch.no_grad():
        np.testing.assert_allclose(sur.module(torch.as_tensor(X)).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X[2]), ref[2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sur.predict(X, check_domain=False, precision="mixed"), ref, rtol=0, atol=1e-5 * big)
    loaded = load_surrogate(sur.save(tmp_path / "kinks"))
    assert loaded.settings.kink_lines == lines
    np.testing.assert_allclose(loaded.predict(X, check_domain=False), ref, rtol=0, atol=1e-12)

    first = train_surrogate(small_dataset, s0, progress=False)
    ref0 = first.predict(X, check_domain=False)
    added = train_surrogate(
        small_dataset, dataclasses.replace(s, epochs=0, finetune_epochs=1, finetune_power=4, lr=1e-12), init=first, progress=False
    )
    np.testing.assert_allclose(added.predict(X, check_domain=False), ref0, rtol=0, atol=1e-5 * np.abs(ref0).max())
    assert added.spec().n_kinks == 2
    assert np.abs(added.spec().layers[0][0][:, 4:]).max() <= 1e-6  # zero-initialised, moved by ~lr only
    with pytest.raises(ValueError, match="'init'.*kink_lines"):
        train_surrogate(small_dataset, dataclasses.replace(s, kink_lines=lines[:1]), init=added, progress=False)
    one = train_surrogate(small_dataset, dataclasses.replace(s, kink_lines=lines[:1], epochs=3), progress=False)
    ref1 = one.predict(X, check_domain=False)
    more = train_surrogate(  # the init's line leads the settings' lines: the second is added with zero weights
        small_dataset, dataclasses.replace(s, epochs=0, finetune_epochs=1, finetune_power=4, lr=1e-12), init=one, progress=False
    )
    np.testing.assert_allclose(more.predict(X, check_domain=False), ref1, rtol=0, atol=1e-5 * np.abs(ref1).max())
    np.testing.assert_array_equal(more.spec().kink_matrix[:1], one.spec().kink_matrix)
    assert more.spec().n_kinks == 2 and np.abs(more.spec().layers[0][0][:, 5]).max() <= 1e-6
    with pytest.raises(ValueError, match="'init'.*kink_lines"):
        train_surrogate(small_dataset, dataclasses.replace(s, kink_lines=lines[::-1]), init=one, progress=False)
    with pytest.raises(ValueError, match="'init'.*kink_gain"):
        train_surrogate(small_dataset, dataclasses.replace(s, kink_gain=1.0), init=added, progress=False)
    with pytest.raises(ValueError, match="kink_lines"):
        dataclasses.replace(small_settings, kink_lines=((0.0, 0.0, 1.0),))
    with pytest.raises(ValueError, match="kink_width"):
        dataclasses.replace(small_settings, kink_lines=lines, kink_width=0.0)
    with pytest.raises(ValueError, match="kink_reach"):
        dataclasses.replace(small_settings, kink_width=0.1, kink_reach=0.05)
    with pytest.raises(ValueError, match="kink_gain"):
        dataclasses.replace(small_settings, kink_gain=-1.0)
    with pytest.raises(ValueError, match="kink_lines"):
        train_surrogate(small_dataset, dataclasses.replace(s0, kink_lines=((1.0, 2.0),), epochs=1), progress=False)


def test_kink_extra_reaches(small_dataset, small_settings, tmp_path):
    """``kink_extra_reaches``: per line, one feature per reach (``kink_reach`` first), each d softplus(t / d)
    - w softplus(t / w) for its own d (the formula written out, 1e-12 abs), scaled to peak kink_gain on the
    line (1e-12 abs); the torch module and the fused numpy path equal the independent forward (1e-12 abs),
    also after a save/load round trip (settings included). An init with other extra reaches, reaches not
    above kink_width and repeated reaches are refused, naming the parameter."""
    from mpc_bio.surrogate import load_surrogate

    lines, w, reaches, g = ((1.0, -1.0, 0.0), (0.0, 2.0, 3.0)), 0.05, (0.5, 0.2, 2.0), 3.0
    s = dataclasses.replace(
        small_settings,
        input_knees=(0.5, 0.5),
        kink_lines=lines,
        kink_width=w,
        kink_reach=reaches[0],
        kink_extra_reaches=reaches[1:],
        kink_gain=g,
        epochs=3,
        lbfgs_steps=0,
    )
    X = np.vstack([[3.0, 3.0], [0.05, 1.5], np.random.default_rng(5).uniform(0, 20, size=(100, 2))])
    t = np.column_stack([(X[:, 0] - X[:, 1]) / np.sqrt(2.0), X[:, 1] - 1.5])  # signed distances (mmol/gDW/h)
    sur = train_surrogate(small_dataset, s, progress=False)
    spec = sur.spec()
    assert spec.n_kinks == 6 and spec.layers[0][0].shape[1] == 10
    for col in range(6):
        line, j = divmod(col, 3)
        d = reaches[j]
        bump = d * np.log1p(np.exp(t[:, line] / d)) - w * np.log1p(np.exp(t[:, line] / w))  # mmol/gDW/h
        np.testing.assert_allclose(spec.features(X)[:, 4 + col] * w, bump, rtol=0, atol=1e-12)
    scaled = spec.features(X)[:, 4:] / spec.kink_scale
    np.testing.assert_allclose(scaled[0, :3], g, rtol=0, atol=1e-12)  # on line 1, all three reaches peak at g
    np.testing.assert_allclose(scaled[1, 3:], g, rtol=0, atol=1e-12)
    ref = reference_fluxes(spec, X)
    with torch.no_grad():
        np.testing.assert_allclose(sur.module(torch.as_tensor(X)).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spec.evaluate(X), ref, rtol=0, atol=1e-12)
    loaded = load_surrogate(sur.save(tmp_path / "reaches"))
    assert loaded.settings.kink_extra_reaches == reaches[1:]
    np.testing.assert_allclose(loaded.predict(X, check_domain=False), ref, rtol=0, atol=1e-12)

    with pytest.raises(ValueError, match="'init'.*kink_extra_reaches"):
        train_surrogate(small_dataset, dataclasses.replace(s, kink_extra_reaches=(0.2,)), init=sur, progress=False)
    with pytest.raises(ValueError, match="kink_extra_reaches"):
        dataclasses.replace(s, kink_extra_reaches=(0.04,))  # not above kink_width
    with pytest.raises(ValueError, match="kink_extra_reaches"):
        dataclasses.replace(s, kink_extra_reaches=(0.2, 0.5))  # 0.5 is kink_reach


def test_frozen_init_trains_a_branch_beside_the_init(small_dataset, small_settings):
    """``freeze_init``: the init's neurons are kept exactly (its layers are the leading blocks, the
    off-diagonal blocks zero), so with the branch's last-layer columns zeroed the net is the init's
    function (1e-12 of the largest flux, rel 0); the branch, with kink lines the init lacks, lowers
    the init's validation loss and keeps the mass balance (1e-9); no init, a layer not wider than
    the init's are refused with the parameter named."""
    s = dataclasses.replace(small_settings, hidden=(16, 16), input_knees=(0.5, 0.5), activation_sharpness=10.0, epochs=20, lbfgs_steps=0)
    first = train_surrogate(small_dataset, s, progress=False)
    wide = dataclasses.replace(s, hidden=(24, 20), freeze_init=True, kink_lines=((1.0, -1.0, 0.0),), epochs=30, lr=3e-3)
    sur = train_surrogate(small_dataset, wide, init=first, progress=False)
    spec, old = sur.spec(), first.spec()
    assert spec.hidden == (24, 20) and sur.info["freeze_init"]["branch_hidden"] == [8, 4]
    (W0, b0), (W1, b1), (W2, b2) = spec.layers
    np.testing.assert_array_equal(W0[:16, :4], old.layers[0][0])
    np.testing.assert_array_equal(W0[:16, 4:], 0.0)  # the init never reads the new kink feature
    np.testing.assert_array_equal(W1[:16, :16], old.layers[1][0])
    np.testing.assert_array_equal(W1[:16, 16:], 0.0)
    np.testing.assert_array_equal(W1[16:, :16], 0.0)
    X = np.random.default_rng(3).uniform(0, 20, size=(200, 2))
    ref = first.predict(X, check_domain=False)
    cut = dataclasses.replace(spec, layers=((W0, b0), (W1, b1), (np.hstack([W2[:, :16], 0 * W2[:, 16:]]), old.layers[2][1])))
    np.testing.assert_allclose(cut.evaluate(X), ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert np.abs(sur.predict(X, check_domain=False) - ref).max() > 1e-4  # the branch does something
    assert sur.info["adam_best_val_loss"] < 0.9 * first.info["adam_best_val_loss"]
    assert mass_balance_residual(small_dataset.stoichiometry, sur.predict(X, check_domain=False)) <= 1e-9
    with pytest.raises(ValueError, match="'init'"):
        train_surrogate(small_dataset, wide, progress=False)
    with pytest.raises(ValueError, match="hidden.*wider"):
        train_surrogate(small_dataset, dataclasses.replace(wide, hidden=(24, 16)), init=first, progress=False)


def test_merged_branch_equals_init_plus_branch(small_surrogate):
    """The merged spec of :func:`training._merge_branch` equals the init's numpy forward plus an
    independent torch forward of a random branch module (float64, 1e-12 of the largest flux)."""
    base = small_surrogate.spec()
    U, M = training._branch_output_maps(base)
    torch.manual_seed(0)
    branch = SurrogateModule(2, (5, 3), U.shape[1], base.n_outputs, base.activation, 10.0, warp=base.warped).double()
    with torch.no_grad():
        for name in ("x_offset", "x_scale", "warp_knee", "warp_offset", "warp_scale"):
            getattr(branch, name).copy_(torch.as_tensor(getattr(base, name)))
        branch.y_scale.fill_(1.0)
        branch.out_matrix.copy_(torch.as_tensor(U))
        for p in branch.core.parameters():
            p.mul_(3.0)  # a branch of the size of the fluxes
    assert len(base.layers) == 3
    merged = training._merge_branch(base, branch.to_spec(), M)
    X = np.random.default_rng(1).uniform(0, 20, size=(100, 2))
    with torch.no_grad():
        want = base.evaluate(X) + branch(torch.as_tensor(X)).numpy()
    assert np.abs(want - base.evaluate(X)).max() > 1e-2 * np.abs(want).max()
    np.testing.assert_allclose(merged.evaluate(X), want, rtol=0, atol=1e-12 * np.abs(want).max())
