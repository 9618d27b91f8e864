"""Training a pFBA surrogate from a FluxDataset: scaling, projection, Adam + cosine LR, early stopping, L-BFGS."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mpc_bio.errors import MpcBioError
from mpc_bio.surrogate.artifact import Surrogate
from mpc_bio.surrogate.network import FACTOR_MAX_COST, FACTOR_RTOL, MLPSpec, SurrogateModule
from mpc_bio.surrogate.projection import build_projection
from mpc_bio.surrogate.settings import SurrogateSettings

__all__ = ["train_surrogate", "select_device", "TrainingDataError"]

#: Points per chunk of the full-batch L-BFGS loss and gradient (bounds its memory, ~1 GB in float64
#: for a 4 x 128 network with 349 fluxes).
_FULL_BATCH_CHUNK = 16384
#: Share of the time left at the start of training kept for the metrics at the end (``time_limit_s``).
_METRICS_RESERVE = 0.03
#: The fixed maps that make the first layer's input features (scaling, input warp, kink features).
_FEATURE_MAPS = ("x_offset", "x_scale", "warp_knee", "warp_offset", "warp_scale", "kink_matrix", "kink_bias", "kink_ratio", "kink_scale")


class TrainingDataError(MpcBioError):
    """The dataset cannot be used for training (too few usable points, NaNs, ...)."""


def select_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU raises ``RuntimeError``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA device; use 'auto' or 'cpu'.")
    return torch.device(device)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the module's parameters and buffers (the best weights so far)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _note_interrupt(info: dict[str, Any], stage: str, epoch: int | None, best_epoch: int | None) -> None:
    """Record a Ctrl-C in ``info["interrupted"]`` and warn; training then ends with the best weights so far."""
    info["interrupted"] = {"stage": stage, "epoch": epoch, "best_epoch": best_epoch}
    warnings.warn(
        f"Training interrupted during {stage}"
        + (f" (epoch {epoch}); keeping the best weights so far (epoch {best_epoch})" if epoch is not None else "")
        + "; the later stages are skipped and the surrogate is finished and returned as usual.",
        RuntimeWarning,
        stacklevel=5,
    )


def train_surrogate(
    dataset,
    settings: SurrogateSettings | None = None,
    *,
    init: Surrogate | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
    report: Callable[[str], None] | None = None,
) -> Surrogate:
    """Train a surrogate of the pFBA map sampled in ``dataset``.

    Parameters
    ----------
    dataset : mpc_bio.metabolism.dataset.FluxDataset
        Uptake inputs (mmol/gDW/h) and pFBA fluxes; points with status optimal or relaxed are
        used, failed/infeasible (NaN) rows are dropped.
    settings : SurrogateSettings, optional
        Architecture and training settings (defaults if omitted).
    init : Surrogate, optional
        Continue training this surrogate instead of starting from random weights (a warm
        restart: the learning-rate schedule of ``settings`` starts again, e.g. with a smaller
        ``lr``). It must be a surrogate of the same model, inputs and reactions, trained on data
        over the same domain with the same mass-balance map (e.g. the same data, or these plus
        new points: the output scaling of the new data is absorbed into the last layer), with
        the same architecture (activation, input warp, target, number of hidden layers); keep
        the same ``seed`` so the validation split stays unseen (on other data the split is new,
        and points the init trained on may be among the validation points). A wider
        ``settings.hidden`` widens it without changing its function: the new neurons start from
        random incoming and zero outgoing weights (more capacity, warm). With
        ``settings.freeze_init`` only the new neurons are trained, as a branch whose output adds to
        the init's unchanged network (every layer must then be wider than the init's).
    progress : bool
        Show a tqdm progress bar with the training and validation losses.
    time_limit_s : float, optional
        Wall-time limit of the whole call (s, > 0). The time left after the set-up is shared
        between the Adam stage and the L^p fine-tuning stage in the ratio ``epochs :
        finetune_epochs``; each stage's cosine learning-rate schedule runs on whichever is further
        along, its steps or its time, and the stage ends at its epochs or its time. So both
        stages run, and the learning rate has decayed, when the budget ends (``settings.epochs``
        is then an upper bound). ``info["time_limit"]`` records the split. Without it the epochs
        alone decide.
    report : callable, optional
        Called once with one line stating the expected training time, measured on the first
        two Adam epochs (e.g. ``"training: 2,000 epochs, about 1.7 h on this machine (measured on
        the first epochs)"``); also recorded as ``info["expected_training_s"]``.

    Returns
    -------
    Surrogate
        Float64 surrogate with the training time in ``info`` and metrics (:func:`compute_metrics`
        summaries) on the held-out validation points (``metrics["validation"]``) and on every
        usable training point (``metrics["training_data"]``; its ``worst_reactions`` are the
        candidates for ``reaction_weights``).

    Notes
    -----
    The loss is the mean squared error of the *projected* net fluxes, each reaction divided by
    its flux range over the data (so every reaction counts alike; growth is up-weighted by
    ``settings.growth_weight``, named reactions by ``settings.reaction_weights``), so the network
    is trained through the mass-balance layer.

    Ctrl-C (KeyboardInterrupt) during training is not lost work: the stage that is running stops,
    the best weights so far are kept, later stages are skipped, and the surrogate is finished
    (metrics included) and returned as usual, with ``info["interrupted"]`` naming the stage and
    epoch and a RuntimeWarning; `mpc-bio train` then saves it.
    """
    s = settings or SurrogateSettings()
    if s.freeze_init and init is None:
        raise ValueError(
            "SurrogateSettings.freeze_init trains a branch beside a trained surrogate: pass that surrogate as "
            "the 'init' parameter of train_surrogate (got init=None), or set freeze_init=False."
        )
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and time_limit_s > 0):
        raise ValueError(
            f"The 'time_limit_s' parameter of train_surrogate must be a positive number of seconds or None; got {time_limit_s!r}."
        )
    t0 = time.perf_counter()
    device = select_device(s.device)
    old_threads = torch.get_num_threads()
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    try:
        return _train(dataset, s, device, progress, t0, init, time_limit_s, report)
    finally:
        if s.num_threads:
            torch.set_num_threads(old_threads)


def _check_init(init: Surrogate, dataset, s: SurrogateSettings) -> None:
    """Refuse a warm start from a surrogate of another model or architecture (the fixed maps are
    compared once they are built, in :func:`_rescaled_init`)."""
    if not isinstance(init, Surrogate):
        raise TypeError(f"The 'init' parameter of train_surrogate must be a Surrogate; got {type(init).__name__}.")
    same = (
        tuple(init.reaction_ids) == tuple(dataset.reaction_ids)
        and tuple(init.input_names) == tuple(dataset.input_names)
        and init.model_hash == dataset.model_hash
    )
    if not same:
        raise ValueError(
            f"The 'init' parameter of train_surrogate must be a surrogate of this dataset's model "
            f"{dataset.model_id!r} (hash {dataset.model_hash}) with its inputs and reactions; it was trained on "
            f"model hash {init.model_hash!r}, inputs {tuple(init.input_names)}, {len(init.reaction_ids)} reactions."
        )
    want, got = s.hidden, init.settings.hidden
    if len(want) != len(got) or any(w < g for w, g in zip(want, got)):
        raise ValueError(
            f"The 'init' parameter of train_surrogate must have the settings' number of hidden layers and no "
            f"layer wider than the settings' hidden {want!r} (wider settings widen it); it has {got!r}."
        )
    if s.freeze_init and any(w <= g for w, g in zip(want, got)):
        raise ValueError(
            f"With freeze_init, every hidden layer of the settings must be wider than the 'init' parameter's (the "
            f"added neurons are the branch that is trained); the settings' hidden is {want!r}, the init's {got!r}."
        )
    for name in ("activation", "input_knees", "target", "mass_balance", "projection_metric"):
        want, got = getattr(s, name), getattr(init.settings, name)
        if want != got:
            raise ValueError(f"The 'init' parameter of train_surrogate must have the settings' {name} {want!r}; it has {got!r}.")
    have = tuple(tuple(line) for line in init.settings.kink_lines)
    if have:
        differ = [
            name
            for name in ("kink_width", "kink_reach", "kink_extra_reaches", "kink_gain")
            if getattr(init.settings, name) != getattr(s, name)
        ]
        if tuple(tuple(line) for line in s.kink_lines[: len(have)]) != have:
            differ.insert(0, "kink_lines")
        if differ:
            raise ValueError(
                f"The 'init' parameter of train_surrogate must have no kink lines, or the settings' leading kink lines "
                f"(the settings' further lines are added with zero weights); its {', '.join(differ)} differ: "
                + "; ".join(f"{name} {getattr(init.settings, name)!r} instead of {getattr(s, name)!r}" for name in differ)
                + "."
            )


def _rescaled_init(init: Surrogate, fixed: dict[str, np.ndarray], pinned: list[str]):
    """``init``'s spec with the output scaling of these data (same function).

    Kink features new to the init (``fixed`` has more lines than the init, whose lines lead) are
    added with zero weights in the first layer (same function). Other data (e.g. the training
    points plus new ones) give another output scaling; the last layer absorbs the change. Every other fixed map (input scaling and warp, i.e. the domain, and the
    mass-balance map) must be the same, or the function would change: refused, naming the map and,
    for the mass-balance map, the reactions constant over one dataset but not over the other
    (``pinned``: these data's constant reactions, pinned by the map).
    """
    spec = init.mlp
    kinks = ("kink_matrix", "kink_bias", "kink_ratio", "kink_scale")
    q0, q = spec.n_kinks, int(fixed["kink_bias"].shape[0]) if "kink_bias" in fixed else 0
    if q > q0:  # the leading q0 lines are checked against the init's below
        W0, b0 = spec.layers[0]
        W0 = np.hstack([W0, np.zeros((W0.shape[0], q - q0))])
        added = {name: np.concatenate([getattr(spec, name), fixed[name][q0:]]) for name in kinks}
        spec = dataclasses.replace(spec, layers=((W0, b0), *spec.layers[1:]), **added)
    for name in (*_FEATURE_MAPS, "out_matrix", "in_matrix", "out_bias"):
        old, new = getattr(spec, name), np.asarray(fixed.get(name, np.zeros(0)))
        if old.size == new.size == 0:
            continue
        if old.shape != new.shape or not np.allclose(old, new, rtol=1e-9, atol=1e-12 * (1.0 + np.abs(new).max(initial=0.0))):
            what = (
                "input scaling: the data span another domain"
                if name.startswith(("x_", "warp"))
                else "kink features"
                if name.startswith("kink")
                else "mass-balance map"
            )
            old_pinned = init.info.get("pinned_constant_reactions")
            why = ""
            if what == "mass-balance map" and old_pinned is not None and set(old_pinned) != set(pinned):
                why = (
                    f" Reactions constant (pinned) over the init's data but not over these: "
                    f"{sorted(set(old_pinned) - set(pinned))}; constant over these only: {sorted(set(pinned) - set(old_pinned))} "
                    "(e.g. new points with a tiny flux where the init's data had none: drop those points)."
                )
            raise ValueError(
                f"The 'init' parameter of train_surrogate must share these data's fixed maps; its {name} ({what}) "
                f"differs from this dataset's.{why}"
            )
    W, b = spec.layers[-1]
    y0, ys, y1, ys1 = spec.y_offset, spec.y_scale, fixed["y_offset"], fixed["y_scale"]
    ratio = np.divide(ys, ys1, out=np.zeros_like(ys), where=ys1 > 0)
    shift = np.divide(y0 - y1, ys1, out=np.zeros_like(ys), where=ys1 > 0)
    last = (W * ratio[:, None], b * ratio + shift)
    return dataclasses.replace(spec, layers=(*spec.layers[:-1], last), y_offset=y1.copy(), y_scale=ys1.copy())


#: Reactions whose range over the data is at most this fraction of the largest range (blocked
#: reactions and LP round-off) are pinned as constants, unless that contradicts the data.
_PIN_CANDIDATE_RTOL = 1e-7
#: Largest change, as a fraction of a reaction's range (floored), that pinning may cause when the
#: data are projected onto the pinned map: LP round-off moves the others far less, while a tiny
#: flux tied to a large one (a trace biomass component tied to growth) moves it by its whole range.
_PIN_DISPLACEMENT_TOL = 1e-3
#: Points used for the check of the pinned projection against the data.
_PIN_CHECK_POINTS = 2000


def _pin_constant_reactions(S, V, X, in_idx, fix_inputs, v_range, range_floor, weights, rids, old_pinned, seed):
    """The reactions pinned as constants by the mass-balance map, their values and the map.

    A reaction is pinned when its range over the data is at most ``_PIN_CANDIDATE_RTOL`` of the
    largest range, the map built, and the data projected onto it: if some reaction moves by more
    than ``_PIN_DISPLACEMENT_TOL`` of its (floored) range (measured against the unpinned map's
    projection when the data themselves are off S v = 0), a pinned flux varies for real (on a
    genome-scale model a trace flux a millionth of growth lies below that threshold, and pinning
    it pins growth through S v = 0). The threshold then drops to the round-off level of the
    data's own solutions, twice the largest mass-balance residual max |S v| of the points (a real
    flux varies above it, LP round-off does not), and failing that, to exact zeros (1e-12 of the
    largest range); if that still contradicts the data, nothing is pinned. A warm start
    (``old_pinned``: the init's pinned set) keeps the init's set when it is the first threshold's,
    so its map is reproduced exactly.

    Returns
    -------
    (const, vals, proj, info)
        Indices, values (mmol/gDW/h), the :class:`MassBalanceProjection` and a json-ready record.
    """
    big = max(float(v_range.max()) if v_range.size else 1.0, 1.0)
    rows = np.sort(np.random.default_rng(seed).choice(V.shape[0], size=min(V.shape[0], _PIN_CHECK_POINTS), replace=False))
    Vc, Xc = V[rows], X[rows]
    resid = np.abs(S @ Vc.T).max() if Vc.size else 0.0
    thresholds = [
        ("range <= 1e-7 of the largest", _PIN_CANDIDATE_RTOL * big),
        ("range <= 2 max|S v| (round-off)", min(_PIN_CANDIDATE_RTOL * big, 2.0 * float(resid))),
        ("range <= 1e-12 of the largest", 1e-12 * big),
    ]
    info: dict[str, Any] = {"mass_balance_residual": float(resid), "tried": []}
    ref = Vc
    for i, (rule, tol) in enumerate(thresholds):
        const = np.setdiff1d(np.flatnonzero(v_range <= tol), in_idx if fix_inputs else [])
        if i and info["tried"] and const.size == info["tried"][-1]["n_pinned"]:
            continue  # the same set as before
        vals = V[:, const].mean(axis=0)
        vals[np.abs(vals) <= tol] = 0.0
        proj = build_projection(S, in_idx, fix_inputs=fix_inputs, fixed_indices=const, fixed_values=vals, weights=weights)
        if i == 0 and old_pinned is not None and sorted(old_pinned) == sorted(rids[j] for j in const):
            info.update(rule=rule, kept_from_init=True)
            return const, vals, proj, info
        free = np.setdiff1d(np.arange(V.shape[1]), const)
        Pc = proj.apply(Vc, Xc)
        worst = _displacement(Pc, ref, free, range_floor)
        if worst > _PIN_DISPLACEMENT_TOL and ref is Vc:
            # measure against the unpinned map's projection of the data, so that points off
            # S v = 0 (an inconsistent or relaxed solve) count only for what the pins add
            ref = build_projection(S, in_idx, fix_inputs=fix_inputs, weights=weights).apply(Vc, Xc)
            worst = _displacement(Pc, ref, free, range_floor)
        info["tried"].append({"rule": rule, "threshold": float(tol), "n_pinned": int(const.size), "max_displacement_frac": worst})
        if worst <= _PIN_DISPLACEMENT_TOL:
            info["rule"] = rule
            return const, vals, proj, info
    const = np.zeros(0, dtype=int)
    info["rule"] = "none pinned (every threshold contradicts the data)"
    proj = build_projection(S, in_idx, fix_inputs=fix_inputs, weights=weights)
    return const, np.zeros(0), proj, info


def _set_output_map(module: SurrogateModule, factors, projected: bool) -> None:
    """How the module applies its final map: through the projection's factors (when given), as the
    plain split -> net conversion (no mass-balance layer), or as the dense ``out_matrix``."""
    if factors is not None:
        module.set_output_factors(*factors)
    elif not projected:
        module.set_output_conversion()
    else:
        module.set_output_factors(None)


def _state_expected_time(t_epoch: float, *, info, s, t0: float, time_limit_s, report) -> None:
    """Record (and pass to ``report``) the expected training time from one measured Adam epoch.

    The second epoch is the measure (the first carries the set-up); a fine-tuning epoch is taken to
    cost the same (same points, larger batches), an L-BFGS evaluation two epochs (a full batch in
    float64); a time limit caps the estimate.
    """
    total = time.perf_counter() - t0 + t_epoch * ((s.epochs - 2) + s.finetune_epochs + 2.5 * s.lbfgs_steps)
    if time_limit_s is not None:
        total = min(total, time_limit_s)
    info["expected_training_s"] = total
    if report is None:
        return
    what = (
        f"{s.epochs:,} epochs"
        + (f" + {s.finetune_epochs:,} L^{s.finetune_power} epochs" if s.finetune_epochs else "")
        + (f" + {s.lbfgs_steps:,} L-BFGS steps" if s.lbfgs_steps else "")
    )
    when = f"{total / 3600:.1f} h" if total >= 5400 else f"{total / 60:.0f} min" if total >= 90 else f"{total:.0f} s"
    cap = f" (time limit {time_limit_s:.0f} s)" if time_limit_s is not None and total >= time_limit_s else ""
    report(f"training: {what}, about {when} on this machine{cap} (measured on the first epochs; early stopping may end it sooner)")


def _displacement(P, ref, free, range_floor) -> float:
    """Largest |P - ref| over the points and the ``free`` reactions, as a fraction of their ranges."""
    moved = np.abs(P - ref)[:, free] / range_floor[free]
    return float(moved.max()) if moved.size else 0.0


def _branch_output_maps(spec: MLPSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(U, M)`` for a branch beside ``spec``: from the SVD out_matrix diag(y_scale) = U S V^T
    (rank d, relative cut ``FACTOR_RTOL``), the branch's last layer predicts d values z that add
    U z to the net fluxes (so they keep the mass balance), and M = V S^-1 (m, d) maps z into the
    spec's last-layer outputs: out_matrix diag(y_scale) M = U."""
    U, S, Vt = np.linalg.svd(spec.out_matrix * spec.y_scale[None, :], full_matrices=False)
    d = int(np.sum(S > FACTOR_RTOL * S[0])) if S.size and S[0] > 0 else 0
    if d == 0:
        raise TrainingDataError("freeze_init: the init's output map is zero (every flux pinned); a branch could change nothing.")
    return np.ascontiguousarray(U[:, :d]), Vt[:d].T / S[:d]


def _merge_branch(base: MLPSpec, branch: MLPSpec, M: np.ndarray) -> MLPSpec:
    """One :class:`MLPSpec` computing base(x) + U z_branch(x) (see :func:`_branch_output_maps`).

    The hidden layers are put side by side, block diagonal (the branch's neurons after the
    base's, neither reading the other); the last layers are joined, the branch's mapped by M.
    Both specs must share the input features (scaling, warp, kink features) and the activation;
    their sharpness is folded into the weights, so it may differ.
    """
    layers = []
    last = len(base.layers) - 1
    for i, ((Wa, ba), (Wb, bb)) in enumerate(zip(base.layers, branch.layers)):
        if i == 0:
            layers.append((np.vstack([Wa, Wb]), np.concatenate([ba, bb])))
        elif i < last:
            W = np.block([[Wa, np.zeros((Wa.shape[0], Wb.shape[1]))], [np.zeros((Wb.shape[0], Wa.shape[1])), Wb]])
            layers.append((W, np.concatenate([ba, bb])))
        else:
            layers.append((np.hstack([Wa, M @ Wb]), ba + M @ bb))
    return dataclasses.replace(base, layers=tuple(layers))


def _train(dataset, s: SurrogateSettings, device: torch.device, progress: bool, t0: float, init, time_limit_s, report) -> Surrogate:
    """The training stages in order: data, fixed maps, network, split, Adam, L^p fine-tuning, L-BFGS, metrics."""
    if init is not None:
        _check_init(init, dataset, s)
    data = _training_data(dataset, s)
    info: dict[str, Any] = {
        "n_train_points_total": int(data.X.shape[0]),
        "device": str(device),
        "pfba_settings": (getattr(dataset, "settings", None) or {}).get("pfba"),
    }
    fixed, factors = _fixed_maps(dataset, data, s, init, info)
    net = _network(data, s, fixed, factors, init, info, device)
    val_idx, tr_idx = _split(data.X.shape[0], s)
    w = _reaction_weights(dataset, data, s)
    split_term = s.target == "split" and not s.freeze_init  # a branch's raw outputs are not the split fluxes
    loss = _Loss(data, net.V_fit, tr_idx, val_idx, fixed["y_scale"], w, split_term, torch.float32, device)
    history: list[tuple[int, float, float]] = []
    gen = torch.Generator(device="cpu").manual_seed(s.seed)  # the batch order of both Adam stages
    on_second_epoch = None
    if s.epochs > 2:
        on_second_epoch = functools.partial(_state_expected_time, info=info, s=s, t0=t0, time_limit_s=time_limit_s, report=report)
    adam = _Stage("adam", "train surrogate", s.epochs, s.batch_size, s.lr, 2, _adam_seconds(s, t0, time_limit_s, info), True)
    best_loss, best_epoch, last = _adam_stage(net.module, loss, adam, s, gen, math.inf, history, 0, progress, info, on_second_epoch)
    if best_epoch < 0:  # no Adam stage, or interrupted in its first epoch: the start is kept, its loss recorded
        best_loss = loss.validation(net.module)
    info.update(adam_epochs=last + 1, best_epoch=best_epoch, adam_best_val_loss=best_loss)

    p = s.finetune_power
    if s.finetune_epochs > 0 and "interrupted" not in info:  # Adam on the L^p loss, for the worst case
        seconds = math.inf
        if time_limit_s is not None:  # the rest of the limit (an Adam stage that ended early leaves more)
            seconds = max(1e-3, (time_limit_s - (time.perf_counter() - t0)) * (1.0 - _METRICS_RESERVE))
        ft = _Stage(
            f"fine-tune L^{p}", f"fine-tune L^{p}", s.finetune_epochs, s.finetune_batch_size, s.lr * s.finetune_lr_ratio, p, seconds, False
        )
        info["finetune_val_loss_before"] = start = loss.validation(net.module, p)
        best_loss, best_epoch, last_ft = _adam_stage(net.module, loss, ft, s, gen, start, history, last + 1, progress, info)
        info.update(finetune_epochs_run=last_ft + 1, finetune_best_epoch=best_epoch, finetune_val_loss_after=best_loss)

    module = _to_float64(net, s, device)
    loss = None  # the float32 copies are not needed any more
    if s.lbfgs_steps > 0 and "interrupted" not in info:
        # float64 copies only for L-BFGS: on iCH360's 550,000 points these are 1.5 GB more at the end
        loss = _Loss(data, net.V_fit, tr_idx, val_idx, fixed["y_scale"], w, split_term, torch.float64, device)
        _lbfgs_stage(module, loss, s, progress, info)
    loss = net.V_fit = None  # the training copies go before the metrics (a branch's residual V_fit is as large as V)
    return _finished(dataset, data, s, module, net, val_idx, history, info, t0)


@dataclasses.dataclass(frozen=True, eq=False)
class _TrainingData:
    """The usable points of a dataset in float64 (no copies when every point is usable) and their reaction indices."""

    X: np.ndarray  #: inputs (n, k), mmol/gDW/h
    V: np.ndarray  #: net fluxes (n, r), mmol/gDW/h
    T: np.ndarray  #: the network's targets (n, m): V, or the split fluxes (forward, backward)
    C: np.ndarray  #: (r, m) map from targets to net fluxes
    rids: tuple[str, ...]
    in_idx: np.ndarray  #: the input exchange reactions' columns (k,)
    g_idx: int  #: the objective's column
    v_range: np.ndarray  #: each reaction's range over the data (r,), mmol/gDW/h
    range_floor: np.ndarray  #: v_range floored at 1e-3 of the largest: the loss and projection scale


def _training_data(dataset, s: SurrogateSettings) -> _TrainingData:
    """The points to learn from (status optimal or relaxed, finite); at least 10."""
    rows = dataset.usable_rows()
    if rows.sum() < 10:
        raise TrainingDataError(
            f"The dataset has {int(rows.sum())} usable points (status optimal/relaxed, finite); at least 10 are needed."
        )
    every = bool(rows.all())  # no copies of the (often GB-sized) arrays when every row is usable
    X = np.asarray(dataset.inputs if every else dataset.inputs[rows], dtype=np.float64)
    V = np.asarray(dataset.fluxes if every else dataset.fluxes[rows], dtype=np.float64)
    r = V.shape[1]
    rids = tuple(dataset.reaction_ids)
    v_range = V.max(axis=0) - V.min(axis=0)
    big = float(v_range.max()) if v_range.size else 1.0
    if s.target == "net":
        T, C = V, np.eye(r)
    else:
        T, C = np.asarray(dataset.split_fluxes[rows], dtype=np.float64), np.hstack([np.eye(r), -np.eye(r)])
    in_idx = np.array([rids.index(x) for x in dataset.input_reactions])
    return _TrainingData(X, V, T, C, rids, in_idx, rids.index(dataset.objective_id), v_range, np.maximum(v_range, 1e-3 * big))


def _fixed_maps(dataset, data: _TrainingData, s: SurrogateSettings, init: Surrogate | None, info: dict[str, Any]):
    """The module's fixed maps (input and output scaling, mass-balance map, input warp, kink features)
    and the mass-balance map's factors when they are cheaper to apply than its matrix (else None)."""
    low, high = data.X.min(axis=0), data.X.max(axis=0)
    y_std = data.T.std(axis=0)
    fixed = {
        "x_offset": 0.5 * (low + high),
        "x_scale": np.where(high > low, 0.5 * (high - low), 1.0),
        "y_offset": data.T.mean(axis=0),
        "y_scale": np.where(y_std > 1e-9 * max(float(y_std.max()), 1e-300), y_std, 0.0),  # constants exact
    }
    maps, factors = _mass_balance_map(dataset, data, s, init, info)
    fixed.update(maps)
    fixed.update(_input_warp(dataset, data.X, s))
    fixed.update(_kink_features(dataset, data.X.shape[1], s))
    return fixed, factors


def _mass_balance_map(dataset, data: _TrainingData, s: SurrogateSettings, init: Surrogate | None, info: dict[str, Any]):
    """``out_matrix``, ``in_matrix``, ``out_bias`` and the factors of out_matrix (or None): the projection
    onto S v = 0 with the inputs and the constant reactions pinned, or the plain target -> net map."""
    X, V, C, in_idx = data.X, data.V, data.C, data.in_idx
    r, k = V.shape[1], X.shape[1]
    if not s.mass_balance:
        return {"out_matrix": C, "in_matrix": np.zeros((r, k)), "out_bias": np.zeros(r)}, None
    pinned = np.abs(V[:, in_idx] + X) <= 1e-6 * (1.0 + np.abs(X))
    fix_inputs = bool(np.all(pinned))
    if not fix_inputs:
        # Relaxed points (uptake shortfall slacks) have exchange fluxes that differ from -x;
        # pinning them would contradict the data, so only S v = 0 is enforced.
        info["points_with_relaxed_uptake"] = int((~pinned.all(axis=1)).sum())
    # Reactions constant over all training points (mostly blocked, always zero) are pinned,
    # so the projection cannot leak corrections into them; a tiny flux that moves with the
    # others (e.g. a trace biomass component) is not (see _pin_constant_reactions)
    weights = data.range_floor if s.projection_metric == "range" else None
    old_pinned = init.info.get("pinned_constant_reactions") if init is not None else None
    const, vals, proj, pin_info = _pin_constant_reactions(
        dataset.stoichiometry, V, X, in_idx, fix_inputs, data.v_range, data.range_floor, weights, data.rids, old_pinned, s.seed
    )
    info["pinning"] = pin_info
    m = C.shape[1]
    factors = None  # out_matrix = left @ right, when that is cheaper to apply (SurrogateModule.set_output_factors)
    if proj.dim * (m + r) <= FACTOR_MAX_COST * r * m:  # the factors cost d (m + r) per point, the matrix r m
        factors = (proj.left, proj.right @ C)
    info.update(projection_rank=proj.rank, projection_fixes_inputs=fix_inputs, pinned_constant_reactions=[data.rids[j] for j in const])
    return {"out_matrix": proj.N @ C, "in_matrix": proj.G, "out_bias": proj.c}, factors


def _input_warp(dataset, X: np.ndarray, s: SurrogateSettings) -> dict[str, np.ndarray]:
    """The input warp asinh(x / knee), scaled to [-1, 1] over the data (no maps without ``input_knees``)."""
    if not s.input_knees:
        return {}
    if len(s.input_knees) != X.shape[1]:
        raise ValueError(
            f"The 'input_knees' parameter of SurrogateSettings needs one knee per input {tuple(dataset.input_names)}; got {s.input_knees}."
        )
    knee = np.asarray(s.input_knees, dtype=np.float64)
    F = np.arcsinh(X / knee)
    f_lo, f_hi = F.min(axis=0), F.max(axis=0)
    return {"warp_knee": knee, "warp_offset": 0.5 * (f_lo + f_hi), "warp_scale": np.where(f_hi > f_lo, 0.5 * (f_hi - f_lo), 1.0)}


def _kink_features(dataset, k: int, s: SurrogateSettings) -> dict[str, np.ndarray]:
    """Kink features: bumps of u = signed distance / kink_width, peak scaled to kink_gain, 0 away from the line
    (one feature per line and reach; no maps without ``kink_lines``)."""
    if not s.kink_lines:
        return {}
    lines = np.asarray(s.kink_lines, dtype=np.float64)
    if lines.shape[1] != k + 1:
        raise ValueError(
            f"The 'kink_lines' parameter of SurrogateSettings needs rows (a_1, ..., a_{k}, c) for the inputs "
            f"{tuple(dataset.input_names)}; got rows of {lines.shape[1]} numbers."
        )
    reaches = np.array([s.kink_reach, *s.kink_extra_reaches])
    lines = np.repeat(lines, len(reaches), axis=0)  # per line, one feature per reach
    norm = np.linalg.norm(lines[:, :k], axis=1) * s.kink_width
    rho = np.tile(s.kink_width / reaches, len(s.kink_lines))
    return {
        "kink_matrix": lines[:, :k] / norm[:, None],
        "kink_bias": lines[:, k] / norm,
        "kink_ratio": rho,
        "kink_scale": (1.0 / rho - 1.0) * np.log(2.0) / s.kink_gain,
    }


@dataclasses.dataclass(eq=False)
class _Network:
    """The module being trained and what finishing it needs."""

    module: SurrogateModule
    fixed: dict[str, np.ndarray]  #: the module's fixed maps (float64)
    factors: tuple[np.ndarray, np.ndarray] | None  #: factors of out_matrix (see _set_output_map)
    projected: bool  #: the module ends in a projection (mass balance or a branch's map)
    V_fit: np.ndarray | None  #: the fluxes it fits: V, or with freeze_init the init's residual V - init(X)
    base: MLPSpec | None = None  #: with freeze_init, the init's spec the branch adds to
    M_branch: np.ndarray | None = None  #: with freeze_init, the branch's outputs into base's last layer


def _network(data: _TrainingData, s: SurrogateSettings, fixed, factors, init: Surrogate | None, info, device) -> _Network:
    """The module, seeded, with its fixed maps; a warm start loads the init (widened); with freeze_init
    the module is the branch alone, fitted to the init's residual V - init(X)."""
    X, V = data.X, data.V
    r, k = V.shape[1], X.shape[1]
    base = _rescaled_init(init, fixed, info.get("pinned_constant_reactions", [])) if init is not None else None
    hidden, n_raw, V_fit, M_branch = s.hidden, data.T.shape[1], V, None
    if s.freeze_init:
        U, M_branch = _branch_output_maps(base)
        hidden, n_raw = tuple(w - g for w, g in zip(s.hidden, base.hidden)), U.shape[1]
        fixed = {
            **{name: getattr(base, name) for name in _FEATURE_MAPS if getattr(base, name).size},  # the init's, exactly
            "y_offset": np.zeros(n_raw),
            "y_scale": np.ones(n_raw),
            "out_matrix": U,
            "in_matrix": np.zeros((r, k)),
            "out_bias": np.zeros(r),
        }
        factors = None  # the branch's map U is thin already
        V_fit = base.evaluate(X)
        np.subtract(V, V_fit, out=V_fit)
        info["freeze_init"] = {"init_hidden": list(base.hidden), "branch_hidden": list(hidden), "branch_outputs": int(n_raw)}
    torch.manual_seed(s.seed)
    n_kinks = len(s.kink_lines) * (1 + len(s.kink_extra_reaches))
    module = SurrogateModule(k, hidden, n_raw, r, s.activation, s.activation_sharpness, warp=bool(s.input_knees), n_kinks=n_kinks)
    with torch.no_grad():
        for name, arr in fixed.items():
            getattr(module, name).copy_(torch.as_tensor(arr, dtype=torch.float32))
        if s.freeze_init:  # a zero last layer: training starts from the init's function
            module.core[-1].weight.zero_()
            module.core[-1].bias.zero_()
    if init is not None:
        if not s.freeze_init:
            module.load_spec(base, widen=True)  # new neurons (if wider) keep the seeded random init
        info["warm_start"] = {
            **{key: init.info.get(key) for key in ("training_time_s", "adam_epochs", "best_epoch", "warm_start")},
            "settings": init.settings.to_dict(),
            "training_data_hash": init.training_data_hash,
        }
    projected = s.mass_balance or s.freeze_init
    _set_output_map(module, factors, projected)
    module.to(device)
    return _Network(module, fixed, factors, projected, V_fit, base, M_branch)


def _split(n: int, s: SurrogateSettings) -> tuple[np.ndarray, np.ndarray]:
    """Validation and training point indices: a seeded permutation, ``validation_fraction`` (at least one) held out."""
    perm = np.random.default_rng(s.seed).permutation(n)
    n_val = max(1, int(round(s.validation_fraction * n)))
    return perm[:n_val], perm[n_val:]


def _reaction_weights(dataset, data: _TrainingData, s: SurrogateSettings) -> np.ndarray:
    """The loss weight of each reaction (mean 1): growth_weight on the objective, reaction_weights on the named ones."""
    w = np.ones(len(data.rids))
    w[data.g_idx] = s.growth_weight
    if s.reaction_weights:
        named = dict(s.reaction_weights)
        unknown = sorted(set(named) - set(data.rids))
        if unknown or dataset.objective_id in named:
            raise ValueError(
                "The 'reaction_weights' parameter of SurrogateSettings must name reactions of the dataset other "
                f"than the objective {dataset.objective_id!r} (weighted by growth_weight); got {sorted(named)}, "
                f"of which not in the dataset: {unknown}."
            )
        for rid, wt in named.items():
            w[data.rids.index(rid)] = wt
    return w / w.mean()


class _Loss:
    """The training loss on one copy of the data as tensors (float32 for Adam, float64 for L-BFGS).

    The loss is the weighted mean of |e|^p, e the projected flux error divided by each reaction's
    (floored) range; for p > 2 it is raised to 2/p, which keeps the scale of the mean square. With the
    split target a tenth of the mean squared error of the scaled raw outputs is added.
    """

    def __init__(self, data: _TrainingData, V_fit, tr_idx, val_idx, y_scale, w, split_term: bool, dtype, device):
        def to(a):
            return torch.as_tensor(a, dtype=dtype, device=device)

        self.split_term, self.device = split_term, device
        self.Xtr, self.Vtr = to(data.X[tr_idx]), to(V_fit[tr_idx])
        self.Ttr = to(data.T[tr_idx]) if split_term else self.Vtr  # net target: no second copy
        self.Xva, self.Vva = to(data.X[val_idx]), to(V_fit[val_idx])
        self.T_scale = to(np.where(y_scale > 0, y_scale, 1.0))
        self.inv_range, self.w = to(1.0 / data.range_floor), to(w)

    @property
    def n_train(self) -> int:
        return len(self.Xtr)

    def terms(self, mod, Xb, Vb, Tb, power=2):
        """Batch means of w |e|^p (e: projected flux error / range) and of the split-target term (or None)."""
        if self.split_term and Tb is not None:
            v, y = mod.fluxes_and_raw_outputs(Xb)
        else:  # the raw outputs are not needed: the factored map (if set) never forms them
            v = mod(Xb)
        e = (v - Vb) * self.inv_range
        fit = (e**2 * self.w).mean() if power == 2 else (e.abs() ** power * self.w).mean()
        extra = 0.1 * (((y - Tb) / self.T_scale) ** 2).mean() if self.split_term and Tb is not None else None
        return fit, extra

    def __call__(self, mod, Xb, Vb, Tb, power=2):
        # L^p with p > 2 is dominated by the largest errors; the p-th root keeps its scale
        fit, extra = self.terms(mod, Xb, Vb, Tb, power)
        loss = fit if power == 2 else fit ** (2.0 / power)
        return loss if extra is None else loss + extra

    def batch(self, mod, ib, power=2):
        """The loss on the training points ``ib`` (a tensor of indices)."""
        return self(mod, self.Xtr[ib], self.Vtr[ib], self.Ttr[ib], power)

    def validation(self, mod, power=2) -> float:
        """The loss on the validation points (no gradient)."""
        with torch.no_grad():
            return float(self(mod, self.Xva, self.Vva, None, power))

    def full_batch_backward(self, mod, power=2):
        """The loss over all training points, its gradient accumulated chunk by chunk so memory
        stays bounded (a single float64 graph of 400k points x 349 fluxes does not fit in RAM)."""
        n = self.n_train
        chunks = [slice(i, min(i + _FULL_BATCH_CHUNK, n)) for i in range(0, n, _FULL_BATCH_CHUNK)]
        outer, fit_total = 1.0, 0.0
        if power != 2:  # d(M^(2/p)) = (2/p) M^(2/p - 1) dM, M the mean over all points
            with torch.no_grad():
                fit_total = sum(float(self.terms(mod, self.Xtr[c], self.Vtr[c], None, power)[0]) * (c.stop - c.start) for c in chunks) / n
            outer = (2.0 / power) * fit_total ** (2.0 / power - 1.0)
            fit_total = fit_total ** (2.0 / power)
        total = 0.0
        for c in chunks:
            frac = (c.stop - c.start) / n
            fit, extra = self.terms(mod, self.Xtr[c], self.Vtr[c], self.Ttr[c], power)
            part = fit * (frac * outer)
            if power == 2:
                total += float(fit.detach()) * frac
            if extra is not None:
                part = part + extra * frac
                total += float(extra.detach()) * frac
            part.backward()
        return torch.tensor(total + fit_total)


def _adam_seconds(s: SurrogateSettings, t0: float, time_limit_s: float | None, info: dict[str, Any]) -> float:
    """The Adam stage's share of a time limit (s): what is left now, less a reserve for the metrics at the
    end, split with the fine-tuning in the ratio of their epochs; recorded in ``info["time_limit"]``."""
    if time_limit_s is None:
        return math.inf
    left = max(0.0, (time_limit_s - (time.perf_counter() - t0)) * (1.0 - _METRICS_RESERVE))
    n_ft = s.finetune_epochs if s.finetune_epochs > 0 else 0
    adam_s = left * s.epochs / max(1, s.epochs + n_ft)
    info["time_limit"] = {"time_limit_s": float(time_limit_s), "adam_s": adam_s, "finetune_s": left - adam_s}
    return adam_s


def _cosine(step: int, *, total_steps: int, seconds: float, started: float, final_ratio: float) -> float:
    """The cosine schedule's learning-rate factor at a step: steps or time, whichever is further along."""
    used = (time.perf_counter() - started) / seconds if seconds > 0 else 1.0  # no time left: the final rate
    frac = min(1.0, max(step / total_steps, used))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


@dataclasses.dataclass(frozen=True)
class _Stage:
    """One Adam stage: the Adam stage proper (p = 2) or the L^p fine-tuning."""

    name: str  #: as recorded in ``info["interrupted"]``
    desc: str  #: the progress bar's label
    epochs: int
    batch_size: int
    lr: float
    power: int  #: p of the L^p loss
    seconds: float  #: its share of a time limit (inf: none)
    train_loss: bool  #: record the training loss in the history (else NaN)


def _adam_stage(
    module, loss: _Loss, stage: _Stage, s: SurrogateSettings, gen, start_loss, history, first_epoch, progress, info, on_second_epoch=None
):
    """Adam epochs on shuffled batches under a cosine learning-rate schedule, the best weights on the
    validation points kept (loaded into ``module`` at the end).

    The stage ends after ``stage.epochs``, after ``s.patience`` epochs without a better validation
    loss than the best (the start counts as ``start_loss``), when its time is up, or on Ctrl-C
    (recorded in ``info``). Each epoch appends (epoch, training loss, validation loss) to
    ``history``, numbered from ``first_epoch``; ``on_second_epoch(seconds)`` gets the second epoch's
    time. Returns (best validation loss, its epoch or -1 for the start, the last epoch or -1).
    """
    n_tr = loss.n_train
    bs = min(stage.batch_size, n_tr)
    steps_per_epoch = math.ceil(n_tr / bs)
    total_steps = max(1, stage.epochs * steps_per_epoch)  # epochs = 0: no stage (the schedule is never stepped)
    opt = torch.optim.Adam(module.core.parameters(), lr=stage.lr)
    started = time.perf_counter()
    schedule = functools.partial(_cosine, total_steps=total_steps, seconds=stage.seconds, started=started, final_ratio=s.lr_final_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    best = (start_loss, _state(module), -1)  # the start, kept if interrupted before the first epoch ends
    bar = tqdm(range(stage.epochs), desc=stage.desc, disable=not progress or stage.epochs == 0, leave=False)
    epoch = -1
    epoch_ends: list[float] = []
    try:
        for epoch in bar:
            module.train()
            order = torch.randperm(n_tr, generator=gen).to(loss.device)
            tot = 0.0
            for b in range(steps_per_epoch):
                ib = order[b * bs : (b + 1) * bs]
                opt.zero_grad(set_to_none=True)
                batch_loss = loss.batch(module, ib, stage.power)
                batch_loss.backward()
                opt.step()
                sched.step()
                tot += float(batch_loss.detach()) * len(ib)
            tl = tot / n_tr if stage.train_loss else float("nan")
            vl = loss.validation(module, stage.power)
            if epoch <= 1:
                epoch_ends.append(time.perf_counter())
                if epoch == 1 and on_second_epoch is not None:
                    on_second_epoch(epoch_ends[1] - epoch_ends[0])
            history.append((first_epoch + epoch, tl, vl))
            if vl < best[0]:
                best = (vl, _state(module), epoch)
            bar.set_postfix(**({"train": f"{tl:.2e}"} if stage.train_loss else {}), val=f"{vl:.2e}", best=f"{best[0]:.2e}")
            if epoch - best[2] > s.patience or time.perf_counter() - started >= stage.seconds:
                break
    except KeyboardInterrupt:
        _note_interrupt(info, stage.name, epoch, best[2])
    bar.close()
    module.load_state_dict(best[1])
    return best[0], best[2], epoch


def _to_float64(net: _Network, s: SurrogateSettings, device) -> SurrogateModule:
    """The module in float64, its fixed maps (and output factors) restored from the float64 arrays."""
    module = net.module.double()
    with torch.no_grad():
        for name, arr in net.fixed.items():
            getattr(module, name).copy_(torch.as_tensor(arr, dtype=torch.float64, device=device))
    _set_output_map(module, net.factors, net.projected)
    return module


def _lbfgs_stage(module, loss: _Loss, s: SurrogateSettings, progress: bool, info: dict[str, Any]) -> None:
    """Full-batch L-BFGS on the L^p loss (p = finetune_power); its iterate is kept only if it lowers the
    validation loss (an error such as a GPU out of memory keeps the weights from before it)."""
    p = s.finetune_power
    before = loss.validation(module, p)
    state = _state(module)
    lb = torch.optim.LBFGS(
        module.core.parameters(),
        lr=1.0,
        max_iter=s.lbfgs_steps,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-16,
    )
    # one bar step per loss-and-gradient evaluation (torch's default cap: 5/4 of the iterations)
    bar = tqdm(total=s.lbfgs_steps * 5 // 4, desc=f"L-BFGS L^{p}", unit="eval", disable=not progress, leave=False)

    def closure():
        lb.zero_grad(set_to_none=True)
        value = loss.full_batch_backward(module, p)
        bar.update(1)
        bar.set_postfix(train=f"{float(value):.3e}")
        return value

    try:
        lb.step(closure)
        after = loss.validation(module, p)
    except KeyboardInterrupt:  # keep the L-BFGS iterate only if it is better (checked below)
        _note_interrupt(info, "L-BFGS", None, None)
        after = loss.validation(module, p)
    except RuntimeError as exc:  # e.g. out of memory on a GPU: keep what Adam trained
        warnings.warn(f"L-BFGS stopped ({exc}); the surrogate keeps the weights from before it.", RuntimeWarning, stacklevel=4)
        info["lbfgs_error"] = str(exc)
        after = math.nan
    bar.close()
    if not math.isfinite(after) or after > before:
        module.load_state_dict(state)
        after = before
    info.update(lbfgs_val_loss_before=before, lbfgs_val_loss_after=after)


def _finished(dataset, data: _TrainingData, s: SurrogateSettings, module, net: _Network, val_idx, history, info, t0: float) -> Surrogate:
    """The float64 surrogate on the cpu (a branch merged with its init), with its training record and metrics."""
    spec = module.cpu().to_spec()
    if s.freeze_init:
        spec = _merge_branch(net.base, spec, net.M_branch)
    info["training_time_s"] = time.perf_counter() - t0
    info["history_every_10"] = [list(h) for h in history[::10]]
    X, V = data.X, data.V
    sur = Surrogate(
        mlp=spec,
        input_names=tuple(dataset.input_names),
        input_reactions=tuple(dataset.input_reactions),
        reaction_ids=data.rids,
        objective_id=dataset.objective_id,
        domain_low=X.min(axis=0),
        domain_high=X.max(axis=0),
        training_data_hash=dataset.content_hash(),
        settings=s,
        stoichiometry=dataset.stoichiometry.tocsr(),
        model_id=getattr(dataset, "model_id", ""),
        model_hash=getattr(dataset, "model_hash", ""),
        info=info,
    )
    from mpc_bio.surrogate.metrics import compute_metrics

    # validation: the held-out points; training_data: every usable point, which the refinement
    # concentrates at kinks, so its worst reactions are where the map is hardest to follow
    return sur.with_metrics(
        validation=compute_metrics(sur, X[val_idx], V[val_idx]).summary(),
        training_data=compute_metrics(sur, X, V).summary(),
    )
