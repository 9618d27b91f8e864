"""The NOMAD inputs of the co-design: the screened ensemble and the top NRA designs, cached.

The ensemble stage (:func:`mpc_bio.nomad.run_ensemble_study`) is reused from the ``[nomad]
output_dir`` when the settings recorded there equal this study's, else from the co-design cache
(keyed by a hash of the ``[nomad]`` ensemble tables), else run and cached. The NRA designs
(enumeration per model, unique designs, ranking over the models, as in ``mpc-bio nomad design``)
are cached under a hash of the ensemble key and the ``[nomad.design]`` NRA/ranking settings.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc_bio.codesign.cache import cached_entry, config_hash
from mpc_bio.nomad.design_study import design_vmax_folds, rank_ensemble_designs
from mpc_bio.nomad.ensemble import KineticEnsemble, load_ensemble
from mpc_bio.nomad.mca import ControlCoefficients, load_control_coefficients
from mpc_bio.nomad.nra_settings import DesignStudySettings
from mpc_bio.nomad.ranking import mean_fold_changes
from mpc_bio.nomad.settings import EnsembleStudySettings

__all__ = ["TopDesigns", "ensemble_key", "load_or_run_ensemble", "load_or_run_designs"]


def ensemble_key(settings: EnsembleStudySettings) -> str:
    """Hash of the settings that determine the ensemble (output_dir and executor excluded)."""
    d = settings.to_dict()
    d.pop("output_dir", None)
    d.pop("executor", None)
    return config_hash(d)


def _same_ensemble(summary_path: Path, settings: EnsembleStudySettings) -> bool:
    try:
        recorded = json.loads(summary_path.read_text())["settings"]
    except (OSError, KeyError, ValueError):
        return False
    recorded = {k: v for k, v in recorded.items() if k not in ("output_dir", "executor")}
    mine = {k: v for k, v in settings.to_dict().items() if k not in ("output_dir", "executor")}
    return config_hash(recorded) == config_hash(mine)


def load_or_run_ensemble(
    settings: EnsembleStudySettings, cache_dir: str | Path, *, reuse_nomad_output: bool = True
) -> tuple[KineticEnsemble, ControlCoefficients, str, str]:
    """The screened ensemble and its control coefficients.

    Returns
    -------
    ensemble, control, key, source
        ``source`` is "nomad_output", "cache" or "computed".
    """
    key = ensemble_key(settings)
    out = Path(settings.output_dir)
    if (
        reuse_nomad_output
        and (out / "ensemble" / "ensemble.json").is_file()
        and (out / "control_coefficients" / "control_coefficients.json").is_file()
        and _same_ensemble(out / "summary.json", settings)
    ):
        return load_ensemble(out / "ensemble"), load_control_coefficients(out / "control_coefficients"), key, "nomad_output"

    def build(tmp: Path) -> None:
        from mpc_bio.nomad.study import run_ensemble_study, write_ensemble_study

        write_ensemble_study(run_ensemble_study(settings), tmp, figures=False)

    path, reused = cached_entry(cache_dir, "ensemble", key, build)
    return (
        load_ensemble(path / "ensemble"),
        load_control_coefficients(path / "control_coefficients"),
        key,
        "cache" if reused else "computed",
    )


@dataclass(frozen=True, eq=False)
class TopDesigns:
    """The best-ranked NRA designs, as Vmax fold changes per model.

    Attributes
    ----------
    labels : tuple of str
        "d-1 ENZ1+ENZ2", ... in rank order.
    memberships : tuple of tuple of str
        Targeted enzymes of each design.
    model_index : ndarray of int (n_models,)
        Ensemble indices of the models the NRA ran on (the co-design members).
    log_changes : ndarray (n_designs, n_models, n_enzymes)
        NRA log fold changes (ln units); NaN where the design is infeasible in a model.
    enzyme_ids : tuple of str
    predicted_yield_gain : ndarray (n_designs,)
        Mean predicted yield gain of the ranking (fraction).
    n_feasible : ndarray of int (n_designs,)
    key : str
        Cache key.
    source : str
        "cache" or "computed".
    """

    labels: tuple[str, ...]
    memberships: tuple[tuple[str, ...], ...]
    model_index: np.ndarray
    log_changes: np.ndarray
    enzyme_ids: tuple[str, ...]
    predicted_yield_gain: np.ndarray
    n_feasible: np.ndarray
    key: str
    source: str

    def vmax_folds(self, ensemble: KineticEnsemble, design: int) -> np.ndarray:
        """Vmax multipliers (n_models, n_rxn) of one design; rows of NaN where infeasible."""
        return design_vmax_folds(ensemble.network, self.enzyme_ids, self.log_changes[design, : self.model_index.size])

    def mean_fold_changes(self, design: int) -> dict[str, float]:
        """Mean fold change of each member enzyme over the feasible models (ratio)."""
        return mean_fold_changes(self.log_changes[design], self.enzyme_ids, self.memberships[design])


def _design_key(ens_key: str, settings: DesignStudySettings, n_designs: int) -> str:
    return config_hash(
        {
            "ensemble": ens_key,
            "max_models": settings.max_models,
            "exclude_transport": settings.exclude_transport,
            "nra": dataclasses.asdict(settings.nra),
            "ranking": dataclasses.asdict(settings.ranking),
            "n_designs": n_designs,
        }
    )


def load_or_run_designs(
    ensemble: KineticEnsemble,
    control: ControlCoefficients,
    settings: DesignStudySettings,
    n_designs: int,
    cache_dir: str | Path,
    ens_key: str,
) -> TopDesigns:
    """Enumerate, rank (:func:`~mpc_bio.nomad.design_study.rank_ensemble_designs`) and keep the
    ``n_designs`` best NRA designs (cached by their settings)."""
    key = _design_key(ens_key, settings, n_designs)

    def build(tmp: Path) -> None:
        model_index, _, problems, _, ranking, _ = rank_ensemble_designs(ensemble, control, settings)
        top = list(range(min(n_designs, len(ranking.designs))))
        np.savez(
            tmp / "designs.npz",
            model_index=model_index,
            log_changes=ranking.log_changes[top] if top else np.zeros((0, len(problems), len(ranking.enzyme_ids))),
        )
        meta = {
            "labels": [f"d-{k + 1} {ranking.designs[i].label}" for k, i in enumerate(top)],
            "memberships": [list(ranking.designs[i].membership) for i in top],
            "enzyme_ids": list(ranking.enzyme_ids),
            "predicted_yield_gain": [float(ranking.mean_yield_gain[i]) for i in top],
            "n_feasible": [int(ranking.n_feasible[i]) for i in top],
            "n_unique_designs": len(ranking.designs),
        }
        (tmp / "designs.json").write_text(json.dumps(meta, indent=2))

    path, reused = cached_entry(cache_dir, "designs", key, build)
    meta = json.loads((path / "designs.json").read_text())
    arr = np.load(path / "designs.npz")
    return TopDesigns(
        labels=tuple(meta["labels"]),
        memberships=tuple(tuple(m) for m in meta["memberships"]),
        model_index=np.asarray(arr["model_index"], dtype=int),
        log_changes=np.asarray(arr["log_changes"], dtype=float),
        enzyme_ids=tuple(meta["enzyme_ids"]),
        predicted_yield_gain=np.asarray(meta["predicted_yield_gain"], dtype=float),
        n_feasible=np.asarray(meta["n_feasible"], dtype=int),
        key=key,
        source="cache" if reused else "computed",
    )
