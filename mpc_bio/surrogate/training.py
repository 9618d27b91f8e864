"""Training a pFBA surrogate from a FluxDataset: scaling, projection, Adam + cosine LR, early stopping, L-BFGS."""

from __future__ import annotations

import dataclasses
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
#: The fixed maps that make the first layer's input features (scaling, input warp, kink features).
#: Share of the time left at the start of training kept for the metrics at the end (``time_limit_s``).
_METRICS_RESERVE = 0.03
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
        stacklevel=4,
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
    t0 = time.perf_counter()
    device = select_device(s.device)
    old_threads = torch.get_num_threads()
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and time_limit_s > 0):
        raise ValueError(
            f"The 'time_limit_s' parameter of train_surrogate must be a positive number of seconds or None; got {time_limit_s!r}."
        )
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


def _state_expected_time(info, s, t_epoch, elapsed, time_limit_s, report) -> None:
    """Record (and pass to ``report``) the expected training time from one measured Adam epoch.

    The second epoch is the measure (the first carries the set-up); a fine-tuning epoch is taken to
    cost the same (same points, larger batches), an L-BFGS evaluation two epochs (a full batch in
    float64); a time limit caps the estimate.
    """
    total = elapsed + t_epoch * ((s.epochs - 2) + s.finetune_epochs + 2.5 * s.lbfgs_steps)
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


def _train(
    dataset,
    s: SurrogateSettings,
    device: torch.device,
    progress: bool,
    t0: float,
    init: Surrogate | None = None,
    time_limit_s: float | None = None,
    report: Callable[[str], None] | None = None,
) -> Surrogate:
    if init is not None:
        _check_init(init, dataset, s)
    rows = dataset.usable_rows()
    if rows.sum() < 10:
        raise TrainingDataError(
            f"The dataset has {int(rows.sum())} usable points (status optimal/relaxed, finite); at least 10 are needed."
        )
    every = bool(rows.all())  # no copies of the (often GB-sized) arrays when every row is usable
    X = np.asarray(dataset.inputs if every else dataset.inputs[rows], dtype=np.float64)
    V = np.asarray(dataset.fluxes if every else dataset.fluxes[rows], dtype=np.float64)
    n, k = X.shape
    r = V.shape[1]
    rids = tuple(dataset.reaction_ids)
    in_idx = np.array([rids.index(x) for x in dataset.input_reactions])
    g_idx = rids.index(dataset.objective_id)

    # ---- scaling
    low, high = X.min(axis=0), X.max(axis=0)
    x_offset = 0.5 * (low + high)
    x_scale = np.where(high > low, 0.5 * (high - low), 1.0)
    v_range = V.max(axis=0) - V.min(axis=0)
    big = float(v_range.max()) if v_range.size else 1.0
    range_floor = np.maximum(v_range, 1e-3 * big)  # loss and projection scale per reaction
    if s.target == "net":
        T = V
        C = np.eye(r)
    else:
        split = np.asarray(dataset.split_fluxes[rows], dtype=np.float64)
        T = split
        C = np.hstack([np.eye(r), -np.eye(r)])
    m = T.shape[1]
    y_offset = T.mean(axis=0)
    y_std = T.std(axis=0)
    y_scale = np.where(y_std > 1e-9 * max(float(y_std.max()), 1e-300), y_std, 0.0)  # constants exact

    # ---- mass-balance layer
    factors = None  # out_matrix = left @ right, when that is cheaper to apply (SurrogateModule.set_output_factors)
    info: dict[str, Any] = {
        "n_train_points_total": int(n),
        "device": str(device),
        "pfba_settings": (getattr(dataset, "settings", None) or {}).get("pfba"),
    }
    if s.mass_balance:
        pinned = np.abs(V[:, in_idx] + X) <= 1e-6 * (1.0 + np.abs(X))
        fix_inputs = bool(np.all(pinned))
        if not fix_inputs:
            # Relaxed points (uptake shortfall slacks) have exchange fluxes that differ from -x;
            # pinning them would contradict the data, so only S v = 0 is enforced.
            info["points_with_relaxed_uptake"] = int((~pinned.all(axis=1)).sum())
        # Reactions constant over all training points (mostly blocked, always zero) are pinned,
        # so the projection cannot leak corrections into them; a tiny flux that moves with the
        # others (e.g. a trace biomass component) is not (see _pin_constant_reactions)
        weights = range_floor if s.projection_metric == "range" else None
        old_pinned = init.info.get("pinned_constant_reactions") if init is not None else None
        const, vals, proj, pin_info = _pin_constant_reactions(
            dataset.stoichiometry, V, X, in_idx, fix_inputs, v_range, range_floor, weights, rids, old_pinned, s.seed
        )
        info["pinning"] = pin_info
        out_matrix = proj.N @ C
        if proj.dim * (m + r) <= FACTOR_MAX_COST * r * m:  # the factors cost d (m + r) per point, the matrix r m
            factors = (proj.left, proj.right @ C)
        in_matrix = proj.G
        out_bias = proj.c
        info.update(
            projection_rank=proj.rank,
            projection_fixes_inputs=fix_inputs,
            pinned_constant_reactions=[rids[j] for j in const],
        )
    else:
        out_matrix = C
        in_matrix = np.zeros((r, k))
        out_bias = np.zeros(r)

    # ---- input warp: asinh(x / knee), scaled to [-1, 1] over the data
    fixed = {
        "x_offset": x_offset,
        "x_scale": x_scale,
        "y_offset": y_offset,
        "y_scale": y_scale,
        "out_matrix": out_matrix,
        "in_matrix": in_matrix,
        "out_bias": out_bias,
    }
    if s.input_knees:
        if len(s.input_knees) != k:
            raise ValueError(
                f"The 'input_knees' parameter of SurrogateSettings needs one knee per input {tuple(dataset.input_names)}; "
                f"got {s.input_knees}."
            )
        knee = np.asarray(s.input_knees, dtype=np.float64)
        F = np.arcsinh(X / knee)
        f_lo, f_hi = F.min(axis=0), F.max(axis=0)
        fixed.update(
            warp_knee=knee,
            warp_offset=0.5 * (f_lo + f_hi),
            warp_scale=np.where(f_hi > f_lo, 0.5 * (f_hi - f_lo), 1.0),
        )

    # ---- kink features: bumps of u = signed distance / kink_width, peak scaled to kink_gain, 0 away from the line
    if s.kink_lines:
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
        fixed.update(
            kink_matrix=lines[:, :k] / norm[:, None],
            kink_bias=lines[:, k] / norm,
            kink_ratio=rho,
            kink_scale=(1.0 / rho - 1.0) * np.log(2.0) / s.kink_gain,
        )

    # ---- module; with freeze_init it is the branch alone, fitted to the init's residual V - init(X)
    base = _rescaled_init(init, fixed, info.get("pinned_constant_reactions", [])) if init is not None else None
    hidden, n_raw, V_fit = s.hidden, m, V
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
    module = SurrogateModule(
        k,
        hidden,
        n_raw,
        r,
        s.activation,
        s.activation_sharpness,
        warp=bool(s.input_knees),
        n_kinks=len(s.kink_lines) * (1 + len(s.kink_extra_reaches)),
    )
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
    _set_output_map(module, factors, s.mass_balance or s.freeze_init)
    module.to(device)

    # ---- split
    rng = np.random.default_rng(s.seed)
    perm = rng.permutation(n)
    n_val = max(1, int(round(s.validation_fraction * n)))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    w = np.ones(r)
    w[g_idx] = s.growth_weight
    if s.reaction_weights:
        named = dict(s.reaction_weights)
        unknown = sorted(set(named) - set(rids))
        if unknown or dataset.objective_id in named:
            raise ValueError(
                "The 'reaction_weights' parameter of SurrogateSettings must name reactions of the dataset other "
                f"than the objective {dataset.objective_id!r} (weighted by growth_weight); got {sorted(named)}, "
                f"of which not in the dataset: {unknown}."
            )
        for rid, wt in named.items():
            w[rids.index(rid)] = wt
    w = w / w.mean()

    split_term = s.target == "split" and not s.freeze_init  # a branch's raw outputs are not the split fluxes

    def tensors(dtype):
        to = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        Vtr = to(V_fit[tr_idx])
        return {
            "Xtr": to(X[tr_idx]),
            "Vtr": Vtr,
            "Ttr": to(T[tr_idx]) if split_term else Vtr,  # net target: no second copy
            "Xva": to(X[val_idx]),
            "Vva": to(V_fit[val_idx]),
            "Ttr_scale": to(np.where(y_scale > 0, y_scale, 1.0)),
            "inv_range": to(1.0 / range_floor),
            "w": to(w),
        }

    def loss_terms(mod, Xb, Vb, Tb, d, power=2):
        """Batch means of w |e|^p (e: projected flux error / range) and of the split-target term."""
        if split_term and Tb is not None:
            v, y = mod.fluxes_and_raw_outputs(Xb)
        else:  # the raw outputs are not needed: the factored map (if set) never forms them
            v = mod(Xb)
        e = (v - Vb) * d["inv_range"]
        fit = (e**2 * d["w"]).mean() if power == 2 else (e.abs() ** power * d["w"]).mean()
        extra = 0.1 * (((y - Tb) / d["Ttr_scale"]) ** 2).mean() if split_term and Tb is not None else None
        return fit, extra

    def loss_fn(mod, Xb, Vb, Tb, d, power=2):
        # L^p with p > 2 is dominated by the largest errors; the p-th root keeps its scale
        fit, extra = loss_terms(mod, Xb, Vb, Tb, d, power)
        loss = fit if power == 2 else fit ** (2.0 / power)
        return loss if extra is None else loss + extra

    def full_batch_backward(mod, d, power=2):
        """The loss over all training points, its gradient accumulated chunk by chunk so memory
        stays bounded (a single float64 graph of 400k points x 349 fluxes does not fit in RAM)."""
        n = len(d["Xtr"])
        chunks = [slice(i, min(i + _FULL_BATCH_CHUNK, n)) for i in range(0, n, _FULL_BATCH_CHUNK)]
        outer, fit_total = 1.0, 0.0
        if power != 2:  # d(M^(2/p)) = (2/p) M^(2/p - 1) dM, M the mean over all points
            with torch.no_grad():
                fit_total = (
                    sum(float(loss_terms(mod, d["Xtr"][c], d["Vtr"][c], None, d, power)[0]) * (c.stop - c.start) for c in chunks) / n
                )
            outer = (2.0 / power) * fit_total ** (2.0 / power - 1.0)
            fit_total = fit_total ** (2.0 / power)
        total = 0.0
        for c in chunks:
            frac = (c.stop - c.start) / n
            fit, extra = loss_terms(mod, d["Xtr"][c], d["Vtr"][c], d["Ttr"][c], d, power)
            part = fit * (frac * outer)
            if power == 2:
                total += float(fit.detach()) * frac
            if extra is not None:
                part = part + extra * frac
                total += float(extra.detach()) * frac
            part.backward()
        return torch.tensor(total + fit_total)

    def val_loss(mod, d, power=2):
        with torch.no_grad():
            return float(loss_fn(mod, d["Xva"], d["Vva"], None, d, power))

    d = tensors(torch.float32)
    # ---- stage times under a time limit: what is left now, less a reserve for the metrics at the end
    stage_s = {"adam": math.inf, "finetune": math.inf}
    if time_limit_s is not None:
        left = max(0.0, (time_limit_s - (time.perf_counter() - t0)) * (1.0 - _METRICS_RESERVE))
        n_ft = s.finetune_epochs if s.finetune_epochs > 0 else 0
        stage_s["adam"] = left * s.epochs / max(1, s.epochs + n_ft)
        info["time_limit"] = {"time_limit_s": float(time_limit_s), "adam_s": stage_s["adam"], "finetune_s": left - stage_s["adam"]}

    def cosine(total_steps: int, seconds: float, started: float):
        """The cosine schedule's factor at a step: steps or time, whichever is further along."""

        def factor(step: int) -> float:
            used = (time.perf_counter() - started) / seconds if seconds > 0 else 1.0  # no time left: the final rate
            frac = min(1.0, max(step / total_steps, used))
            return s.lr_final_ratio + (1 - s.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * frac))

        return factor

    opt = torch.optim.Adam(module.core.parameters(), lr=s.lr)
    n_tr = len(tr_idx)
    bs = min(s.batch_size, n_tr)
    steps_per_epoch = math.ceil(n_tr / bs)
    total_steps = max(1, s.epochs * steps_per_epoch)  # epochs = 0: no Adam stage (the schedule is never stepped)
    adam_start = time.perf_counter()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine(total_steps, stage_s["adam"], adam_start))
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    best = (math.inf, _state(module), -1)  # the start, kept if interrupted before the first epoch ends
    history: list[tuple[int, float, float]] = []
    bar = tqdm(range(s.epochs), desc="train surrogate", disable=not progress or s.epochs == 0, leave=False)
    epoch = -1
    epoch_ends: list[float] = []
    try:
        for epoch in bar:
            module.train()
            order = torch.randperm(n_tr, generator=gen).to(device)
            tot = 0.0
            for b in range(steps_per_epoch):
                ib = order[b * bs : (b + 1) * bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(module, d["Xtr"][ib], d["Vtr"][ib], d["Ttr"][ib], d)
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(ib)
            tl = tot / n_tr
            vl = val_loss(module, d)
            if epoch <= 1:
                epoch_ends.append(time.perf_counter())
                if epoch == 1 and s.epochs > 2:
                    _state_expected_time(info, s, epoch_ends[1] - epoch_ends[0], time.perf_counter() - t0, time_limit_s, report)
            history.append((epoch, tl, vl))
            if vl < best[0]:
                best = (vl, _state(module), epoch)
            bar.set_postfix(train=f"{tl:.2e}", val=f"{vl:.2e}", best=f"{best[0]:.2e}")
            if epoch - best[2] > s.patience or time.perf_counter() - adam_start >= stage_s["adam"]:
                break
    except KeyboardInterrupt:
        _note_interrupt(info, "adam", epoch, best[2])
    bar.close()
    module.load_state_dict(best[1])
    if best[2] < 0:  # no Adam stage, or interrupted in its first epoch: the start is kept, its loss recorded
        best = (val_loss(module, d), best[1], -1)
    info.update(adam_epochs=epoch + 1, best_epoch=best[2], adam_best_val_loss=best[0])

    # ---- optional fine-tuning for the worst case: Adam on the L^p loss (p = finetune_power)
    p = s.finetune_power
    if s.finetune_epochs > 0 and "interrupted" not in info:
        ft_bs = min(s.finetune_batch_size, n_tr)
        ft_steps = math.ceil(n_tr / ft_bs)
        ft_total = s.finetune_epochs * ft_steps
        opt = torch.optim.Adam(module.core.parameters(), lr=s.lr * s.finetune_lr_ratio)
        ft_start = time.perf_counter()
        if time_limit_s is not None:  # the rest of the limit (an Adam stage that ended early leaves more)
            stage_s["finetune"] = max(1e-3, (time_limit_s - (ft_start - t0)) * (1.0 - _METRICS_RESERVE))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine(ft_total, stage_s["finetune"], ft_start))
        best_ft = (val_loss(module, d, p), _state(module), -1)
        info["finetune_val_loss_before"] = best_ft[0]
        bar = tqdm(range(s.finetune_epochs), desc=f"fine-tune L^{p}", disable=not progress, leave=False)
        ep = 0
        try:
            for ep in bar:
                module.train()
                order = torch.randperm(n_tr, generator=gen).to(device)
                for b in range(ft_steps):
                    ib = order[b * ft_bs : (b + 1) * ft_bs]
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(module, d["Xtr"][ib], d["Vtr"][ib], d["Ttr"][ib], d, p)
                    loss.backward()
                    opt.step()
                    sched.step()
                vl = val_loss(module, d, p)
                history.append((epoch + 1 + ep, float("nan"), vl))
                if vl < best_ft[0]:
                    best_ft = (vl, _state(module), ep)
                bar.set_postfix(val=f"{vl:.2e}", best=f"{best_ft[0]:.2e}")
                if ep - best_ft[2] > s.patience or time.perf_counter() - ft_start >= stage_s["finetune"]:
                    break
        except KeyboardInterrupt:
            _note_interrupt(info, f"fine-tune L^{p}", ep, best_ft[2])
        bar.close()
        module.load_state_dict(best_ft[1])
        info.update(finetune_epochs_run=ep + 1, finetune_best_epoch=best_ft[2], finetune_val_loss_after=best_ft[0])

    # ---- optional full-batch L-BFGS in float64
    module = module.double()
    with torch.no_grad():  # restore the fixed maps at full float64 precision
        for name, arr in fixed.items():
            getattr(module, name).copy_(torch.as_tensor(arr, dtype=torch.float64, device=device))
    _set_output_map(module, factors, s.mass_balance or s.freeze_init)  # from the float64 arrays too
    d = None  # the float32 copies are not needed any more
    if s.lbfgs_steps > 0 and "interrupted" not in info:
        d64 = tensors(torch.float64)  # only for L-BFGS: on iCH360's 550,000 points these are 1.5 GB more at the end
        before = val_loss(module, d64, p)
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
        lb_bar = tqdm(total=s.lbfgs_steps * 5 // 4, desc=f"L-BFGS L^{p}", unit="eval", disable=not progress, leave=False)

        def closure():
            lb.zero_grad(set_to_none=True)
            loss = full_batch_backward(module, d64, p)
            lb_bar.update(1)
            lb_bar.set_postfix(train=f"{float(loss):.3e}")
            return loss

        try:
            lb.step(closure)
            after = val_loss(module, d64, p)
        except KeyboardInterrupt:  # keep the L-BFGS iterate only if it is better (checked below)
            _note_interrupt(info, "L-BFGS", None, None)
            after = val_loss(module, d64, p)
        except RuntimeError as exc:  # e.g. out of memory on a GPU: keep what Adam trained
            warnings.warn(f"L-BFGS stopped ({exc}); the surrogate keeps the weights from before it.", RuntimeWarning, stacklevel=3)
            info["lbfgs_error"] = str(exc)
            after = math.nan
        lb_bar.close()
        if not math.isfinite(after) or after > before:
            module.load_state_dict(state)
            after = before
        info.update(lbfgs_val_loss_before=before, lbfgs_val_loss_after=after)
    d64 = V_fit = None  # the training copies go before the metrics (a branch's residual V_fit is as large as V)

    module = module.cpu()
    spec = module.to_spec()
    if s.freeze_init:
        spec = _merge_branch(base, spec, M_branch)
    info["training_time_s"] = time.perf_counter() - t0
    info["history_every_10"] = [list(h) for h in history[::10]]
    sur = Surrogate(
        mlp=spec,
        input_names=tuple(dataset.input_names),
        input_reactions=tuple(dataset.input_reactions),
        reaction_ids=rids,
        objective_id=dataset.objective_id,
        domain_low=low,
        domain_high=high,
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
    sur = sur.with_metrics(
        validation=compute_metrics(sur, X[val_idx], V[val_idx]).summary(),
        training_data=compute_metrics(sur, X, V).summary(),
    )
    return sur
