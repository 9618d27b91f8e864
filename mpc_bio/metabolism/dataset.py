"""FluxDataset: sampled pFBA solutions over a set of uptake inputs, saved as npz + json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mpc_bio.errors import MpcBioError
from mpc_bio.outputs import read_saved

__all__ = ["FluxDataset", "DatasetError", "STATUS_CODES"]

#: Integer status code per point -> name.
STATUS_CODES = {0: "optimal", 1: "relaxed", 2: "failed", 3: "infeasible"}

_ARRAYS = ("inputs", "fluxes", "split_fluxes", "growth", "status", "slacks")


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` (same format, read by ``np.load``) with fast deflate level 1.

    On a 40,401-point iCH360 dataset: about 2x faster than the default level, 5% larger.
    """
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


class DatasetError(MpcBioError):
    """A dataset is inconsistent, incomplete or does not match what it is used with."""


def _check_tie_break(meta: dict[str, Any], jpath: Path) -> None:
    """Check (and complete) the pFBA tie-break rule recorded in a dataset's json.

    Datasets written before ``PFBASettings.tie_break`` existed were solved without a tie-break:
    they are read as ``"none"``, so a fresh reference solve uses the same rule as the data.
    """
    from mpc_bio.metabolism.settings import TIE_BREAKS

    pfba = (meta.get("settings") or {}).get("pfba")
    if pfba is None:
        return
    pfba.setdefault("tie_break", "none")
    if pfba["tie_break"] not in TIE_BREAKS:
        raise DatasetError(f"{jpath} records the pFBA tie_break {pfba['tie_break']!r}; expected one of {list(TIE_BREAKS)}.")


@dataclass(frozen=True, eq=False)
class FluxDataset:
    """pFBA solutions over sampled uptake inputs.

    Attributes
    ----------
    inputs : ndarray, shape (n, k)
        Uptake rates in mmol/gDW/h (positive numbers), one column per input in ``input_names``.
    fluxes : ndarray, shape (n, r)
        Net fluxes v = v+ - v- in mmol/gDW/h (growth in 1/h), columns in ``reaction_ids`` order.
        Exchange fluxes follow COBRA's sign (uptake negative): v[input_reactions[j]] = -inputs[:, j]
        at optimal points.
    split_fluxes : ndarray, shape (n, 2r)
        Non-negative forward parts v+ (first r columns) then reverse parts v- (last r columns).
    growth : ndarray, shape (n,)
        Growth rate in 1/h (the objective reaction's flux).
    status : ndarray of int8, shape (n,)
        0 optimal, 1 relaxed (elastic slacks were needed), 2 failed (solver error; row is NaN),
        3 infeasible (relaxation switched off and the LP has no solution; row is NaN).
    slacks : ndarray, shape (n, m)
        Elastic slack values per relaxed constraint, names in ``slack_names``; zero at optimal points.
    input_names, input_reactions : tuple of str
        Input names (e.g. ``"glucose"``) and the exchange reaction each input fixes.
    reaction_ids, metabolite_ids : tuple of str
        Column order of the fluxes, row order of ``stoichiometry``.
    slack_names : tuple of str
        Name of each slack column.
    objective_id : str
        The growth (objective) reaction id.
    stoichiometry : scipy.sparse.csr_matrix, shape (n_metabolites, r)
        The model's stoichiometric matrix: S v = 0 holds at every solved point.
    model_id, model_hash : str
        Source model identity (see :func:`mpc_bio.metabolism.models.model_hash`).
    settings : dict
        The sampling and solver settings that produced the data (json-serialisable).
    """

    inputs: np.ndarray
    fluxes: np.ndarray
    split_fluxes: np.ndarray
    growth: np.ndarray
    status: np.ndarray
    slacks: np.ndarray
    input_names: tuple[str, ...]
    input_reactions: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    metabolite_ids: tuple[str, ...]
    slack_names: tuple[str, ...]
    objective_id: str
    stoichiometry: sp.csr_matrix
    model_id: str
    model_hash: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.inputs.shape[0] if self.inputs.ndim == 2 else -1
        r = len(self.reaction_ids)
        expect = {
            "inputs": (n, len(self.input_names)),
            "fluxes": (n, r),
            "split_fluxes": (n, 2 * r),
            "growth": (n,),
            "status": (n,),
            "slacks": (n, len(self.slack_names)),
        }
        for name, shape in expect.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise DatasetError(f"FluxDataset.{name} must have shape {shape}; got {got}.")
        if len(self.input_reactions) != len(self.input_names):
            raise DatasetError(
                f"FluxDataset.input_reactions must name one reaction per input ({len(self.input_names)}); got {len(self.input_reactions)}."
            )
        if self.stoichiometry.shape != (len(self.metabolite_ids), r):
            raise DatasetError(
                f"FluxDataset.stoichiometry must have shape {(len(self.metabolite_ids), r)}; got {self.stoichiometry.shape}."
            )
        missing = [x for x in (*self.input_reactions, self.objective_id) if x not in self.reaction_ids]
        if missing:
            raise DatasetError(f"FluxDataset: reactions {missing} are not among reaction_ids.")

    # ------------------------------------------------------------------ views
    @property
    def n_points(self) -> int:
        """Number of sample points."""
        return int(self.inputs.shape[0])

    def column(self, reaction_id: str) -> np.ndarray:
        """Net flux of one reaction over all points (mmol/gDW/h)."""
        try:
            j = self.reaction_ids.index(reaction_id)
        except ValueError:
            raise DatasetError(f"Reaction {reaction_id!r} is not in the dataset.") from None
        return self.fluxes[:, j]

    def mask(self, *statuses: str) -> np.ndarray:
        """Boolean mask of points with any of the given statuses (``"optimal"``, ...)."""
        codes = {v: k for k, v in STATUS_CODES.items()}
        bad = [s for s in statuses if s not in codes]
        if bad:
            raise DatasetError(f"Unknown status {bad}; expected some of {list(codes)}.")
        return np.isin(self.status, [codes[s] for s in statuses])

    def content_hash(self) -> str:
        """SHA-256 (16 hex) over all arrays and ids; identical data give identical hashes."""
        h = hashlib.sha256()
        for name in _ARRAYS:
            a = np.ascontiguousarray(getattr(self, name))
            h.update(name.encode())
            h.update(str(a.dtype).encode())
            h.update(a.tobytes())
        h.update(json.dumps([self.input_names, self.reaction_ids, self.model_hash]).encode())
        return h.hexdigest()[:16]

    def usable_rows(self) -> np.ndarray:
        """Boolean mask (n,) of the points to learn from: status optimal or relaxed, finite inputs and fluxes."""
        return self.mask("optimal", "relaxed") & np.all(np.isfinite(self.fluxes), axis=1) & np.all(np.isfinite(self.inputs), axis=1)

    def flux_ranges(self) -> np.ndarray:
        """Range (max - min) of each reaction's net flux over the usable rows, shape (r,), mmol/gDW/h."""
        usable = self.usable_rows()
        return np.ptp(self.fluxes if usable.all() else self.fluxes[usable], axis=0)  # no copy when all are usable

    def rows(self, index) -> FluxDataset:
        """The points ``index`` (indices or a boolean mask) of this dataset, same model and settings."""
        return replace(self, **{name: getattr(self, name)[index] for name in _ARRAYS})

    def appended(self, *others: FluxDataset, settings: dict[str, Any] | None = None) -> FluxDataset:
        """This dataset's points followed by those of ``others`` (of the same model), with ``settings``
        (default this dataset's)."""
        parts = (self, *others)
        arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS}
        return replace(self, **arrays, settings=self.settings if settings is None else settings)

    def status_counts(self) -> dict[str, int]:
        """Number of points per status name."""
        return {name: int(np.sum(self.status == code)) for code, name in STATUS_CODES.items()}

    # ------------------------------------------------------------------ io
    def save(self, out_dir: str | Path) -> Path:
        """Write ``dataset.npz`` and ``dataset.json`` into ``out_dir`` (created if missing).

        Files are written to temporary names and renamed, so an interrupted save never
        leaves a dataset that looks complete.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        S = self.stoichiometry.tocoo()
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update(S_row=S.row, S_col=S.col, S_data=S.data)
        tmp_npz = out / "dataset.tmp.npz"
        _write_npz(tmp_npz, arrays)
        meta = {
            "format": "mpc_bio.FluxDataset/1",
            "n_points": self.n_points,
            "input_names": list(self.input_names),
            "input_reactions": list(self.input_reactions),
            "reaction_ids": list(self.reaction_ids),
            "metabolite_ids": list(self.metabolite_ids),
            "slack_names": list(self.slack_names),
            "objective_id": self.objective_id,
            "model_id": self.model_id,
            "model_hash": self.model_hash,
            "settings": self.settings,
            "status_counts": self.status_counts(),
            "content_hash": self.content_hash(),
        }
        tmp_json = out / "dataset.tmp.json"
        tmp_json.write_text(json.dumps(meta, indent=1))
        tmp_npz.replace(out / "dataset.npz")
        tmp_json.replace(out / "dataset.json")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "FluxDataset":
        """Read a dataset written by :meth:`save` (a directory or its ``dataset.json``).

        Raises
        ------
        DatasetError
            If a file is missing, or the arrays do not match the recorded hash and ids.
        """
        jpath, npath, meta = read_saved(path, "dataset.json", "dataset.npz", "mpc_bio.FluxDataset/1", DatasetError, "FluxDataset")
        _check_tie_break(meta, jpath)
        import zipfile

        try:
            with np.load(npath) as z:
                arrays = {name: z[name] for name in _ARRAYS}
                S = sp.coo_matrix(
                    (z["S_data"], (z["S_row"], z["S_col"])),
                    shape=(len(meta["metabolite_ids"]), len(meta["reaction_ids"])),
                ).tocsr()
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as exc:
            raise DatasetError(
                f"{npath} cannot be read ({type(exc).__name__}: {exc}): the dataset is truncated or corrupted; sample it again."
            ) from None
        ds = cls(
            **arrays,
            input_names=tuple(meta["input_names"]),
            input_reactions=tuple(meta["input_reactions"]),
            reaction_ids=tuple(meta["reaction_ids"]),
            metabolite_ids=tuple(meta["metabolite_ids"]),
            slack_names=tuple(meta["slack_names"]),
            objective_id=meta["objective_id"],
            stoichiometry=S,
            model_id=meta["model_id"],
            model_hash=meta["model_hash"],
            settings=meta["settings"],
        )
        if ds.content_hash() != meta["content_hash"]:
            raise DatasetError(
                f"The arrays in {npath} do not match the content hash recorded in {jpath} "
                f"({ds.content_hash()} != {meta['content_hash']}): the dataset is corrupted or mixed."
            )
        return ds
