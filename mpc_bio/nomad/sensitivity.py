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
from mpc_bio.nomad.executor import progress as progress_bar
from mpc_bio.nomad.nra_settings import SensitivitySettings, VerificationSettings
from mpc_bio.nomad.reactor import simulate_reactor
from mpc_bio.nomad.viability import ViabilityRule, strain_steady_state

__all__ = ["SensitivityResult", "expression_sensitivity"]


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
    ensemble: KineticEnsemble,
    models: Sequence[int],
    design: str,
    enzymes: Sequence[str],
    mean_fold: Sequence[float],
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
) -> SensitivityResult:
    """Perturb a design's mean fold changes uniformly and simulate every model.

    Each draw multiplies the mean fold change f_j by U(1 - a, 1 + a) (``a =
    settings.perturbation``): for mode "all" every member at once, for mode ``e`` only enzyme
    ``e`` while the others stay at their mean. Seeded (``settings.seed``).

    Parameters
    ----------
    ensemble : KineticEnsemble
    models : sequence of int
        Model indices into ``ensemble``.
    design : str
        Label.
    enzymes : sequence of str
        Member enzymes (reaction ids of the network).
    mean_fold : sequence of float
        Mean NRA fold change per member (ratio > 0).
    settings, verification : optional
    feed : FeedProfile or callable, optional
        Fed-batch feed rate (h -> L/h), glucose at ``verification.feed_glucose``
        (None: batch).
    reference_titer : ndarray (n_models,), optional
        Reference-strain titers at the readout times (mM); simulated when omitted.
    readout_times : ndarray (n_models,), optional
        Time at which each model's titers are read (h), e.g. the batch verification's
        :attr:`VerificationResult.readout_times`; default the end of the run.
    viability : ViabilityRule, optional
        Judge every draw by its steady state (the rule of the design's NRA); None: not checked.
    each_enzyme : bool
        Also perturb each member alone (modes named by the enzyme); False: mode "all" only (the
        draws of mode "all" are the same either way).

    Returns
    -------
    SensitivityResult
    """
    settings = settings or SensitivitySettings()
    verification = verification or VerificationSettings()
    enzymes = tuple(enzymes)
    mean_fold = np.asarray(mean_fold, dtype=float)
    if mean_fold.shape != (len(enzymes),) or np.any(~np.isfinite(mean_fold)) or np.any(mean_fold <= 0):
        raise ValueError(f"mean_fold must hold one positive fold per enzyme {enzymes}. Got {mean_fold!r}.")
    net = ensemble.network
    cols = [net.reaction_index(e) for e in enzymes]
    models = [int(m) for m in models]
    modes = ("all",) + (enzymes if each_enzyme else ())
    rng = np.random.default_rng(settings.seed)
    a = settings.perturbation
    nm, nd, ne, nt = len(models), settings.n_draws, len(enzymes), verification.n_points
    folds = np.broadcast_to(mean_fold, (len(modes), nm, nd, ne)).copy()
    u = rng.uniform(1 - a, 1 + a, size=(len(modes), nm, nd, ne))
    folds[0] *= u[0]
    for k in range(1, len(modes)):
        folds[k, :, :, k - 1] *= u[k, :, :, k - 1]
    product = np.full((len(modes), nm, nd, nt), np.nan)
    success = np.zeros((len(modes), nm, nd), dtype=bool)
    failure = np.full((len(modes), nm, nd), "", dtype=object) if viability is not None else None
    t0 = time.perf_counter()
    ref = np.full(nm, np.nan) if reference_titer is None else np.asarray(reference_titer, dtype=float)
    nominal = np.full(nm, np.nan)
    times = np.linspace(0.0, verification.batch_time, nt)
    t_read = np.full(nm, float(verification.batch_time)) if readout_times is None else np.asarray(readout_times, dtype=float)
    if t_read.shape != (nm,):
        raise ValueError(f"readout_times must hold one time per model ({nm}). Got shape {t_read.shape}.")
    for m, model in enumerate(progress_bar(models, progress, f"sensitivity {design}")):
        if reference_titer is None:
            ref[m] = np.interp(t_read[m], times, simulate_reactor(ensemble, model, settings=verification, feed=feed).product)
        base = np.ones(net.n_reactions)
        base[cols] = mean_fold
        nominal[m] = np.interp(
            t_read[m], times, simulate_reactor(ensemble, model, vmax_fold=base, settings=verification, feed=feed).product
        )
        for k in range(len(modes)):
            for d in range(nd):
                fold = np.ones(net.n_reactions)
                fold[cols] = folds[k, m, d]
                sim = simulate_reactor(ensemble, model, vmax_fold=fold, settings=verification, feed=feed)
                product[k, m, d] = sim.product
                success[k, m, d] = sim.success
                if failure is not None:
                    failure[k, m, d] = viability.failure(strain_steady_state(ensemble, model, fold))
    return SensitivityResult(
        design=design,
        enzymes=enzymes,
        mean_fold=mean_fold,
        modes=modes,
        model_ids=tuple(model_ids) if model_ids is not None else tuple(f"model{m}" for m in models),
        folds=folds,
        times=times,
        product=product,
        reference_titer=ref,
        nominal_titer=nominal,
        success=success,
        seconds=time.perf_counter() - t0,
        readout_times=t_read,
        failure=failure,
        viability=viability,
    )
