"""Expression sensitivity of a design: its enzyme fold changes perturbed in the kinetic reactor.

The mean NRA fold changes of a design are perturbed uniformly by +/- a fraction (paper: 50%),
all member enzymes together and each one alone, ``n_draws`` times per model; titers are read
at the batch verification's readout times (:attr:`~mpc_bio.nomad.verification.VerificationResult.readout_times`).
With a :class:`~mpc_bio.nomad.viability.ViabilityRule` every draw is judged like any verified
strain (stable steady state within the design's NRA bounds); a non-viable draw counts as zero
titer, and the statistics as simulated (rule ignored) are given beside.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from mpc_bio.feed import FeedProfile
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.nra_settings import SensitivitySettings, VerificationSettings
from mpc_bio.nomad.reactor import simulate_reactor
from mpc_bio.nomad.viability import ViabilityRule, strain_steady_state

__all__ = ["SensitivityResult", "expression_sensitivity", "expression_sensitivities"]


@dataclass(frozen=True, eq=False)
class SensitivityResult:
    """Expression sensitivity of one design across models.

    Attributes
    ----------
    design : str
        Design label.
    enzymes : tuple of str
        Member enzymes.
    mean_fold : ndarray (n_enzymes,)
        Mean NRA fold change per member over the models (ratio).
    modes : tuple of str
        "all" (every member perturbed together) then each enzyme alone.
    model_ids : tuple of str
    folds : ndarray (n_modes, n_models, n_draws, n_enzymes)
        Applied fold changes.
    times : ndarray (n_t,)
        h.
    product : ndarray (n_modes, n_models, n_draws, n_t)
        Titer time courses, mM.
    reference_titer : ndarray (n_models,)
        Final titer of the reference strain, mM.
    nominal_titer : ndarray (n_models,)
        Final titer at the mean fold changes, mM.
    success : ndarray of bool (n_modes, n_models, n_draws)
    seconds : float
    readout_times : ndarray (n_models,) or None
        h.
    failure : ndarray of str (n_modes, n_models, n_draws) or None
        Why a draw is not viable under ``viability`` ("" when it is); None when not checked.
    viability : ViabilityRule or None
    """

    design: str
    enzymes: tuple[str, ...]
    mean_fold: np.ndarray
    modes: tuple[str, ...]
    model_ids: tuple[str, ...]
    folds: np.ndarray
    times: np.ndarray
    product: np.ndarray
    reference_titer: np.ndarray
    nominal_titer: np.ndarray
    success: np.ndarray
    seconds: float
    readout_times: np.ndarray | None = None
    failure: np.ndarray | None = None
    viability: ViabilityRule | None = None

    @property
    def viable(self) -> np.ndarray:
        """True where a draw ran and (when checked) is viable (n_modes, n_models, n_draws)."""
        ok = self.success.copy()
        if self.failure is not None:
            ok &= self.failure == ""
        return ok

    @property
    def final_titer(self) -> np.ndarray:
        """Titer at each model's readout time (t_end when none given), (n_modes, n_models, n_draws), mM."""
        if self.readout_times is None:
            return self.product[..., -1]
        out = np.full(self.product.shape[:3], np.nan)
        for m, t in enumerate(self.readout_times):
            for k in range(self.product.shape[0]):
                for d in range(self.product.shape[2]):
                    if np.all(np.isfinite(self.product[k, m, d])):
                        out[k, m, d] = float(np.interp(t, self.times, self.product[k, m, d]))
        return out

    def bands(self, quantiles: tuple[float, float] = (0.05, 0.95)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and quantile band of the titer time course over models x draws, per mode.

        Returns
        -------
        mean, low, high : ndarray (n_modes, n_t), mM
        """
        a = self.product.reshape(self.product.shape[0], -1, self.product.shape[-1])
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (np.nanmean(a, axis=1), np.nanquantile(a, quantiles[0], axis=1), np.nanquantile(a, quantiles[1], axis=1))

    def summary(self) -> dict:
        """Per mode: titer against the reference strain, under the viability rule and as simulated.

        ``fraction_above_reference``: responses (model x draw) whose titer at the readout beats
        the reference strain's in the same model, a non-viable or failed draw counted as not
        above; ``fraction_draws_mean_above_reference``: draws d whose mean titer over the models
        (non-viable as zero) beats the reference strain's mean titer (the paper's "mean across
        the responses"); ``*_as_simulated``: the same with the rule ignored (failed
        integrations still count as not above); ``mean_titer_gain``: mean titer over all
        responses (non-viable as zero) / mean reference titer - 1.
        """
        ref = self.reference_titer
        titer = self.final_titer
        out = {}
        for k, mode in enumerate(self.modes):
            t_sim = np.where(self.success[k], titer[k], 0.0)
            t_rule = np.where(self.viable[k], titer[k], 0.0)
            t_sim, t_rule = np.nan_to_num(t_sim, nan=0.0), np.nan_to_num(t_rule, nan=0.0)
            ref_mean = float(np.mean(ref)) if ref.size else math.nan
            res = {}
            for tag, t in (("", t_rule), ("_as_simulated", t_sim)):
                res[f"fraction_above_reference{tag}"] = float(np.mean(t > ref[:, None])) if t.size else None
                res[f"fraction_draws_mean_above_reference{tag}"] = float(np.mean(t.mean(axis=0) > ref_mean)) if t.size else None
                res[f"mean_titer_gain{tag}"] = float(t.mean() / ref_mean - 1.0) if t.size and ref_mean > 0 else None
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = titer[k] / ref[:, None] - 1.0
            fin = gain[np.isfinite(gain)]
            res["p05_titer_gain_as_simulated"] = float(np.percentile(fin, 5)) if fin.size else None
            res["n_success"] = int(self.success[k].sum())
            res["n_viable"] = int(self.viable[k].sum())
            res["n_responses"] = int(self.success[k].size)
            out[mode] = res
        return out

    def to_frame(self):
        """One row per mode x model x draw."""
        import pandas as pd

        rows = []
        for k, mode in enumerate(self.modes):
            for m, mid in enumerate(self.model_ids):
                for d in range(self.folds.shape[2]):
                    row = {
                        "design": self.design,
                        "mode": mode,
                        "model_id": mid,
                        "draw": d,
                        "final_titer_mM": float(self.final_titer[k, m, d]),
                        "reference_titer_mM": float(self.reference_titer[m]),
                        "success": bool(self.success[k, m, d]),
                        "viable": bool(self.viable[k, m, d]),
                        "failure": "" if self.failure is None else str(self.failure[k, m, d]),
                    }
                    row.update({f"fold_{e}": float(self.folds[k, m, d, j]) for j, e in enumerate(self.enzymes)})
                    rows.append(row)
        return pd.DataFrame(rows)


def expression_sensitivity(
    ensemble: KineticEnsemble, models: Sequence[int], design: str, enzymes: Sequence[str], mean_fold: Sequence[float], **options
) -> SensitivityResult:
    """:func:`expression_sensitivities` of one design (label ``design``, member ``enzymes``,
    mean fold changes ``mean_fold``); ``options`` as there."""
    return expression_sensitivities(ensemble, models, [(design, enzymes, mean_fold)], **options)[0]


def _draw_folds(mean_fold: np.ndarray, n_modes: int, n_models: int, settings: SensitivitySettings) -> np.ndarray:
    """The applied fold changes (n_modes, n_models, n_draws, n_enzymes): mode 0 every member x
    U(1 - a, 1 + a), mode k only member k - 1 (seeded by ``settings.seed``)."""
    rng = np.random.default_rng(settings.seed)
    a = settings.perturbation
    ne = mean_fold.size
    folds = np.broadcast_to(mean_fold, (n_modes, n_models, settings.n_draws, ne)).copy()
    u = rng.uniform(1 - a, 1 + a, size=(n_modes, n_models, settings.n_draws, ne))
    folds[0] *= u[0]
    for k in range(1, n_modes):
        folds[k, :, :, k - 1] *= u[k, :, :, k - 1]
    return folds


def _simulate_draws(task: tuple) -> dict:
    """Simulate one design's draws in some models (a work item of :func:`expression_sensitivities`).

    ``task`` = (ensemble, models, cols, mean_fold, folds (n_modes, n_models, n_draws, n_enzymes),
    verification, feed, reference titer per model or None, readout time per model, viability rule
    or None). Returns the arrays of those models (model axis 1 of product / success / failure,
    axis 0 of ``reference`` and ``nominal``) and ``seconds`` (worker wall time).
    """
    ensemble, models, cols, mean_fold, folds, verification, feed, reference, t_read, viability = task
    from mpc_bio.interrupts import check_interrupt

    t0 = time.perf_counter()
    net = ensemble.network
    n_modes, nm, nd = folds.shape[:3]
    nt = verification.n_points
    times = np.linspace(0.0, verification.batch_time, nt)
    product = np.full((n_modes, nm, nd, nt), np.nan)
    success = np.zeros((n_modes, nm, nd), dtype=bool)
    failure = np.full((n_modes, nm, nd), "", dtype=object) if viability is not None else None
    ref = np.full(nm, np.nan) if reference is None else np.asarray(reference, dtype=float).copy()
    nominal = np.full(nm, np.nan)
    for m, model in enumerate(models):
        if reference is None:
            ref[m] = np.interp(t_read[m], times, simulate_reactor(ensemble, model, settings=verification, feed=feed).product)
        base = np.ones(net.n_reactions)
        base[cols] = mean_fold
        nominal[m] = np.interp(
            t_read[m], times, simulate_reactor(ensemble, model, vmax_fold=base, settings=verification, feed=feed).product
        )
        for k in range(n_modes):
            for d in range(nd):
                fold = np.ones(net.n_reactions)
                fold[cols] = folds[k, m, d]
                sim = simulate_reactor(ensemble, model, vmax_fold=fold, settings=verification, feed=feed)
                product[k, m, d] = sim.product
                success[k, m, d] = sim.success
                if failure is not None:
                    failure[k, m, d] = viability.failure(strain_steady_state(ensemble, model, fold))
        check_interrupt()  # CVODES turns Ctrl-C into a failed simulation: never return that as a result
    return {
        "product": product,
        "success": success,
        "failure": failure,
        "reference": ref,
        "nominal": nominal,
        "seconds": time.perf_counter() - t0,
    }


def expression_sensitivities(
    ensemble: KineticEnsemble,
    models: Sequence[int],
    designs: Sequence[tuple[str, Sequence[str], Sequence[float]]],
    *,
    settings: SensitivitySettings | None = None,
    verification: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    model_ids: Sequence[str] | None = None,
    reference_titer: np.ndarray | None = None,
    readout_times: np.ndarray | None = None,
    progress: bool = False,
    viability: ViabilityRule | None = None,
    each_enzyme: bool = True,
    n_workers: int = 1,
) -> tuple[SensitivityResult, ...]:
    """Perturb each design's mean fold changes uniformly and simulate every model.

    Each draw multiplies the mean fold change f_j by U(1 - a, 1 + a) (``a =
    settings.perturbation``): for mode "all" every member at once, for mode ``e`` only enzyme
    ``e`` while the others stay at their mean. Seeded (``settings.seed``), design by design.
    Each design's models are split into chunks so that there are about four tasks per worker over
    all designs; the tasks run on ``n_workers`` processes
    (:func:`~mpc_bio.nomad.executor.run_chunks`: workers die with their parent, finished tasks are
    kept inside a :func:`~mpc_bio.nomad.checkpoint.chunk_checkpoint`). The results of a design
    are the same whatever ``n_workers`` and whichever designs run beside it.

    Parameters
    ----------
    ensemble : KineticEnsemble
    models : sequence of int
        Model indices into ``ensemble``.
    designs : sequence of (label, enzymes, mean fold changes)
        Member enzymes (reaction ids of the network) and the mean NRA fold change per member
        (ratio > 0).
    settings, verification : optional
    feed : FeedProfile or callable, optional
        Fed-batch feed rate (h -> L/h), glucose at ``verification.feed_glucose``
        (None: batch).
    model_ids : sequence of str, optional
        Labels of ``models`` (default "model<index>").
    reference_titer : ndarray (n_models,), optional
        Reference-strain titers at the readout times (mM); simulated when omitted.
    readout_times : ndarray (n_models,), optional
        Time at which each model's titers are read (h), e.g. the batch verification's
        :attr:`VerificationResult.readout_times`; default the end of the run.
    progress : bool
        Show a progress bar over the tasks.
    viability : ViabilityRule, optional
        Judge every draw by its steady state (the rule of the design's NRA); None: not checked.
    each_enzyme : bool
        Also perturb each member alone (modes named by the enzyme); False: mode "all" only (the
        draws of mode "all" are the same either way).
    n_workers : int
        Processes (1 = in this process).

    Returns
    -------
    tuple of SensitivityResult
        One per design, in order; ``seconds`` is the worker wall time of its tasks.
    """
    from mpc_bio.nomad.executor import chunk_indices, run_chunks
    from mpc_bio.nomad.settings import ExecutorSettings

    settings = settings or SensitivitySettings()
    verification = verification or VerificationSettings()
    net = ensemble.network
    models = [int(m) for m in models]
    nm, nt = len(models), verification.n_points
    times = np.linspace(0.0, verification.batch_time, nt)
    t_read = np.full(nm, float(verification.batch_time)) if readout_times is None else np.asarray(readout_times, dtype=float)
    if t_read.shape != (nm,):
        raise ValueError(f"readout_times must hold one time per model ({nm}). Got shape {t_read.shape}.")
    ref = None if reference_titer is None else np.asarray(reference_titer, dtype=float)
    prepared = []
    for design, enzymes, mean_fold in designs:
        enzymes = tuple(enzymes)
        mean_fold = np.asarray(mean_fold, dtype=float)
        if mean_fold.shape != (len(enzymes),) or np.any(~np.isfinite(mean_fold)) or np.any(mean_fold <= 0):
            raise ValueError(f"mean_fold must hold one positive fold per enzyme {enzymes}. Got {mean_fold!r}.")
        modes = ("all",) + (enzymes if each_enzyme else ())
        cols = [net.reaction_index(e) for e in enzymes]
        prepared.append((design, enzymes, mean_fold, modes, cols, _draw_folds(mean_fold, len(modes), nm, settings)))
    if not prepared:
        return ()
    parts = max(1, min(nm, math.ceil(4 * max(1, n_workers) / len(prepared)))) if n_workers > 1 else 1
    chunks = chunk_indices(np.arange(nm), max(1, math.ceil(nm / parts))) if nm else [np.arange(0)]
    tasks, owner = [], []
    for j, (_, _, mean_fold, _, cols, folds) in enumerate(prepared):
        for c in chunks:
            tasks.append(
                (
                    ensemble.subset(np.asarray([models[i] for i in c], dtype=int)),  # only the chunk's models travel to the worker
                    list(range(c.size)),
                    cols,
                    mean_fold,
                    folds[:, c],
                    verification,
                    feed,
                    None if ref is None else ref[c],
                    t_read[c],
                    viability,
                )
            )
            owner.append(j)
    ex = ExecutorSettings(n_workers=max(1, n_workers), progress=progress)
    results = run_chunks(_simulate_draws, tasks, ex, desc="sensitivity")
    out = []
    for j, (design, enzymes, mean_fold, modes, _, folds) in enumerate(prepared):
        mine = [r for r, o in zip(results, owner) if o == j]
        failure = np.concatenate([r["failure"] for r in mine], axis=1) if viability is not None else None
        out.append(
            SensitivityResult(
                design=design,
                enzymes=enzymes,
                mean_fold=mean_fold,
                modes=modes,
                model_ids=tuple(model_ids) if model_ids is not None else tuple(f"model{m}" for m in models),
                folds=folds,
                times=times,
                product=np.concatenate([r["product"] for r in mine], axis=1),
                reference_titer=np.concatenate([r["reference"] for r in mine]),
                nominal_titer=np.concatenate([r["nominal"] for r in mine]),
                success=np.concatenate([r["success"] for r in mine], axis=1),
                seconds=float(sum(r["seconds"] for r in mine)),
                readout_times=t_read,
                failure=failure,
                viability=viability,
            )
        )
    return tuple(out)
