"""The trained surrogate object and its artifact directory (weights + json), with integrity checks."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from mpc_bio.errors import MpcBioError
from mpc_bio.outputs import json_default, read_saved
from mpc_bio.surrogate.network import SPEC_BUFFERS, FusedForward, MLPSpec, SurrogateModule, precision_name
from mpc_bio.surrogate.integrity import JSON_NAME, NPZ_NAME, content_digest, file_sha256, integrity_problem
from mpc_bio.surrogate.settings import SurrogateSettings
from mpc_bio.surrogate.shipped import DEFAULT_ARTIFACT, SHIPPED_SURROGATES, shipped_artifact

__all__ = [
    "Surrogate",
    "DomainWarning",
    "ArtifactError",
    "ArtifactIntegrityWarning",
    "content_digest",
    "load_surrogate",
    "default_surrogate",
    "DEFAULT_ARTIFACT",
    "SHIPPED_SURROGATES",
    "FORMAT",
]

FORMAT = "mpc_bio.Surrogate/1"

_JSON, _NPZ = JSON_NAME, NPZ_NAME


class DomainWarning(UserWarning):
    """Inputs outside the surrogate's training domain: its predictions there are not valid."""


class ArtifactError(MpcBioError):
    """A surrogate artifact is missing, corrupted, or does not match what it is used with."""


class ArtifactIntegrityWarning(UserWarning):
    """An artifact written before content hashes: only its weights can be verified."""


@dataclass(frozen=True, eq=False)
class Surrogate:
    """A trained pFBA surrogate: raw uptakes (mmol/gDW/h) -> net fluxes (mmol/gDW/h, growth 1/h).

    Attributes
    ----------
    mlp : MLPSpec
        Float64 arrays describing the whole map (rebuild it anywhere, e.g. in CasADi); also
        returned by :meth:`spec`.
    module : SurrogateModule
        torch float64 module of ``spec``; ``module(x)`` maps (n, k) inputs to (n, r) net fluxes,
        including the scaling and the mass-balance projection.
    input_names, input_reactions : tuple of str
        Input order (e.g. glucose, oxygen) and the exchange reaction each input fixes.
    reaction_ids : tuple of str
        Output order (the cobra model's reaction ids).
    objective_id : str
        Growth reaction id.
    domain_low, domain_high : ndarray, shape (k,)
        The training box of the inputs (mmol/gDW/h); outside it predictions are not valid.
    metrics : dict
        Training, validation and (after evaluation) off-grid test metrics.
    training_data_hash : str
        ``FluxDataset.content_hash()`` of the training data.
    settings : SurrogateSettings
        The settings it was trained with.
    stoichiometry : scipy.sparse.csr_matrix
        S of the source model (metabolites x reactions), for mass-balance residuals.
    model_id, model_hash : str
        Source model identity.
    info : dict
        Anything else recorded at training time (projection rank, training time in s, device).
    """

    mlp: MLPSpec
    input_names: tuple[str, ...]
    input_reactions: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    objective_id: str
    domain_low: np.ndarray
    domain_high: np.ndarray
    training_data_hash: str
    settings: SurrogateSettings
    stoichiometry: sp.csr_matrix
    model_id: str = ""
    model_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    module: SurrogateModule = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k, r = len(self.input_names), len(self.reaction_ids)
        if self.mlp.n_inputs != k or self.mlp.n_outputs != r:
            raise ArtifactError(
                f"Surrogate: the network maps {self.mlp.n_inputs} inputs to {self.mlp.n_outputs} fluxes, "
                f"but {k} input names and {r} reaction ids were given."
            )
        if self.objective_id not in self.reaction_ids:
            raise ArtifactError(f"Surrogate: objective {self.objective_id!r} is not among the reaction ids.")
        missing = [x for x in self.input_reactions if x not in self.reaction_ids]
        if missing or len(self.input_reactions) != k:
            raise ArtifactError(f"Surrogate: input reactions {list(self.input_reactions)} do not match the ids.")
        object.__setattr__(self, "domain_low", np.asarray(self.domain_low, dtype=np.float64))
        object.__setattr__(self, "domain_high", np.asarray(self.domain_high, dtype=np.float64))
        mod = SurrogateModule.from_spec(self.mlp, torch.float64)
        mod.eval()
        for p in mod.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "module", mod)

    # ------------------------------------------------------------------ views
    @property
    def pfba_settings(self):
        """The :class:`~mpc_bio.metabolism.settings.PFBASettings` of the training data (tie-break
        rule included), recorded at training; the default settings for artifacts that lack them.
        Reference solves that judge this surrogate should use these."""
        from mpc_bio.metabolism.settings import PFBASettings

        d = self.info.get("pfba_settings")
        return PFBASettings.from_dict(d) if d else PFBASettings()

    @property
    def n_inputs(self) -> int:
        """Number of inputs k."""
        return len(self.input_names)

    @property
    def growth_index(self) -> int:
        """Column of the growth reaction in the outputs."""
        return self.reaction_ids.index(self.objective_id)

    def fused(self, precision: str | torch.dtype = "float64", *, factorise: bool | None = None) -> FusedForward:
        """Inference-only torch module with the scalings folded in (fast batches); cached per setting.

        Parameters
        ----------
        precision : {"float64", "float32", "mixed"} or torch.dtype
            ``"float64"`` keeps the mass balance at ~1e-12 mmol/gDW/h; ``"mixed"`` (float32 hidden
            layers, float64 last maps, float64 output) keeps it too and is about twice as fast,
            deviating from float64 by <= 1e-5 of each reaction's range (e_coli_core);
            ``"float32"`` is a little faster still, with balances only to ~1e-5 mmol/gDW/h and a
            float32 output. ``torch.float64`` / ``torch.float32`` are accepted for the first two.
        factorise : bool, optional
            Factorised last layer (default: when it saves work, ``MLPSpec.factorised``).

        See :class:`~mpc_bio.surrogate.network.FusedForward`.
        """
        cache = self.__dict__.setdefault("_fused_cache", {})
        key = (precision_name(precision), factorise)
        if key not in cache:
            cache[key] = FusedForward(self.mlp, precision, factorise=factorise).eval()
        return cache[key]

    def spec(self) -> MLPSpec:
        """The :class:`MLPSpec` (float64 numpy arrays) that fully describes the map x -> v."""
        return self.mlp

    def index(self, reaction_id: str) -> int:
        """Column of a reaction id in the outputs; ``KeyError`` naming it if absent."""
        try:
            return self.reaction_ids.index(reaction_id)
        except ValueError:
            raise KeyError(f"Reaction {reaction_id!r} is not an output of this surrogate.") from None

    def with_metrics(self, **metrics: Any) -> "Surrogate":
        """A copy with extra entries merged into ``metrics``."""
        return dataclasses.replace(self, metrics={**self.metrics, **metrics})

    # ------------------------------------------------------------------ evaluation
    def _as_inputs(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        X = np.asarray(x, dtype=np.float64)
        single = X.ndim == 1
        X = np.atleast_2d(X)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(
                f"Surrogate inputs must have shape (n, {self.n_inputs}) or ({self.n_inputs},) in the order "
                f"{list(self.input_names)}; got {np.shape(x)}."
            )
        return X, single

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Boolean flags: True where every input lies in the training box (1e-9 relative slack)."""
        X, single = self._as_inputs(x)
        tol = 1e-9 * (1.0 + np.abs(self.domain_high - self.domain_low))
        ok = np.all((X >= self.domain_low - tol) & (X <= self.domain_high + tol), axis=1)
        return ok[0:1] if single else ok

    def _warn_domain(self, X: np.ndarray) -> np.ndarray:
        ok = self.in_domain(X)
        if not np.all(ok):
            bad = int(np.sum(~ok))
            warnings.warn(
                f"{bad} of {len(ok)} surrogate input points lie outside the training domain "
                f"{dict(zip(self.input_names, zip(self.domain_low.tolist(), self.domain_high.tolist())))} "
                f"(mmol/gDW/h); predictions there are extrapolations and not valid.",
                DomainWarning,
                stacklevel=3,
            )
        return ok

    def predict(self, x: np.ndarray, *, check_domain: bool = True, return_flags: bool = False, precision: str = "float64"):
        """Net fluxes at uptakes ``x``.

        Parameters
        ----------
        x : array_like, shape (n, k) or (k,)
            Uptake rates in mmol/gDW/h, columns in ``input_names`` order.
        check_domain : bool
            Warn (:class:`DomainWarning`) when any point is outside the training box.
        return_flags : bool
            Also return the boolean in-domain flags (n,).
        precision : {"float64", "mixed", "float32"}
            Arithmetic of batches above 64 points (see :meth:`fused`); up to 64 points are always
            evaluated in numpy float64. The result is float64 in every case.

        Returns
        -------
        ndarray, shape (n, r) or (r,)
            Net fluxes in mmol/gDW/h (growth in 1/h), columns in ``reaction_ids`` order; with
            ``return_flags`` a tuple ``(fluxes, in_domain)``.
        """
        precision = precision_name(precision)
        X, single = self._as_inputs(x)
        ok = self._warn_domain(X) if check_domain else self.in_domain(X)
        if X.shape[0] <= 64:  # numpy: no torch dispatch overhead for few points
            v = self.mlp.evaluate(X)
        else:
            with torch.inference_mode():
                v = self.fused(precision)(torch.as_tensor(X)).numpy().astype(np.float64, copy=False)
        if single:
            v = v[0]
        return (v, ok) if return_flags else v

    def predict_growth(self, x: np.ndarray, *, check_domain: bool = True) -> np.ndarray:
        """Growth rate (1/h) at uptakes ``x`` (n, k) -> (n,)."""
        return np.atleast_2d(self.predict(x, check_domain=check_domain))[:, self.growth_index]

    def jacobian(self, x: np.ndarray, *, check_domain: bool = True) -> np.ndarray:
        """d v / d x by torch autograd: (n, r, k) in (mmol/gDW/h) per (mmol/gDW/h)."""
        X, _ = self._as_inputs(x)
        if check_domain:
            self._warn_domain(X)
        xt = torch.as_tensor(X, dtype=torch.float64)
        jac = torch.func.vmap(torch.func.jacrev(lambda z: self.module(z[None, :])[0]))(xt)
        return jac.numpy()

    def growth_sensitivity(self, x: np.ndarray, *, check_domain: bool = True) -> np.ndarray:
        """d(growth)/d(x_j) by autograd, shape (n, k), in (1/h) per (mmol/gDW/h)."""
        X, _ = self._as_inputs(x)
        if check_domain:
            self._warn_domain(X)
        xt = torch.as_tensor(X, dtype=torch.float64).requires_grad_(True)
        g = self.module(xt)[:, self.growth_index]
        (grad,) = torch.autograd.grad(g.sum(), xt)
        return grad.numpy()

    def unprojected(self, x: np.ndarray) -> np.ndarray:
        """Net fluxes of the bare network, before the mass-balance projection (n, r)."""
        X, _ = self._as_inputs(x)
        with torch.inference_mode():
            y = self.module.raw_outputs(torch.as_tensor(X, dtype=torch.float64)).numpy()
        r = len(self.reaction_ids)
        return y if y.shape[1] == r else y[:, :r] - y[:, r:]

    # ------------------------------------------------------------------ io
    def save(self, out_dir: str | Path) -> Path:
        """Write ``weights.npz`` and ``surrogate.json`` into ``out_dir`` (created if missing)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        s = self.mlp
        arrays: dict[str, np.ndarray] = {name: getattr(s, name) for name in SPEC_BUFFERS if getattr(s, name).size}
        arrays.update(domain_low=self.domain_low, domain_high=self.domain_high)
        for i, (W, b) in enumerate(s.layers):
            arrays[f"layer{i}_W"] = W
            arrays[f"layer{i}_b"] = b
        S = self.stoichiometry.tocoo()
        arrays.update(S_row=S.row.astype(np.int32), S_col=S.col.astype(np.int32), S_data=S.data)
        tmp = out / "weights.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        tmp.replace(out / _NPZ)
        meta = {
            "format": FORMAT,
            "architecture": {
                "hidden": list(s.hidden),
                "activation": s.activation,
                "target": self.settings.target,
                "mass_balance": self.settings.mass_balance,
                "n_inputs": s.n_inputs,
                "input_warp_knees": s.warp_knee.tolist(),
                "n_kink_features": s.n_kinks,
                "n_raw_outputs": int(s.y_offset.shape[0]),
                "n_fluxes": s.n_outputs,
                "n_layers": len(s.layers),
                "n_parameters": s.n_parameters(),
            },
            "input_names": list(self.input_names),
            "input_reactions": list(self.input_reactions),
            "reaction_ids": list(self.reaction_ids),
            "objective_id": self.objective_id,
            "n_metabolites": int(self.stoichiometry.shape[0]),
            "domain": {"low": self.domain_low.tolist(), "high": self.domain_high.tolist(), "units": "mmol/gDW/h"},
            "training_data_hash": self.training_data_hash,
            "model_id": self.model_id,
            "model_hash": self.model_hash,
            "settings": self.settings.to_dict(),
            "metrics": self.metrics,
            "info": self.info,
            "weights_sha256": file_sha256(out / _NPZ),
        }
        meta = json.loads(json.dumps(meta, default=json_default))  # the form a reader sees
        meta["content_sha256"] = content_digest(meta)
        tmp_json = out / "surrogate.tmp.json"
        tmp_json.write_text(json.dumps(meta, indent=1, default=json_default))
        tmp_json.replace(out / _JSON)
        return out


def load_surrogate(
    path: str | Path,
    *,
    reaction_ids: tuple[str, ...] | list[str] | None = None,
    input_names: tuple[str, ...] | list[str] | None = None,
    training_data_hash: str | None = None,
    dataset: Any = None,
) -> Surrogate:
    """Load a surrogate artifact directory written by :meth:`Surrogate.save`.

    Parameters
    ----------
    path : str or Path
        The artifact directory (or its ``surrogate.json``).
    reaction_ids, input_names, training_data_hash : optional
        If given, the artifact must match them exactly.
    dataset : FluxDataset, optional
        Shorthand: its reaction ids, input names and content hash must match.

    Raises
    ------
    ArtifactError
        If a file is missing, the weights do not match their recorded SHA-256, the shapes do not
        match the recorded ids and architecture, or an expected id/hash differs.
    """
    jpath, npath, meta = read_saved(path, _JSON, _NPZ, FORMAT, ArtifactError, "surrogate artifact")
    d = jpath.parent
    if "content_sha256" not in meta:
        warnings.warn(
            f"{jpath} has no content hash (written by an older mpc_bio): only its weights are verified, "
            "not its ids, domain or scaling. Load and save it again to seal it.",
            ArtifactIntegrityWarning,
            stacklevel=2,
        )
    problem = integrity_problem(meta, jpath, npath)
    if problem is not None:
        raise ArtifactError(problem)
    arch = meta["architecture"]
    try:
        with np.load(npath) as z:
            n_layers = int(arch["n_layers"])
            layers = tuple((z[f"layer{i}_W"], z[f"layer{i}_b"]) for i in range(n_layers))
            # the warp and kink arrays are absent without those features (and in artifacts made before them)
            optional = ("warp_", "kink_")
            fixed = {name: z[name] for name in SPEC_BUFFERS if name in z.files or not name.startswith(optional)}
            spec = MLPSpec(layers=layers, activation=arch["activation"], **fixed)
            S = sp.coo_matrix(
                (z["S_data"], (z["S_row"], z["S_col"])),
                shape=(int(meta["n_metabolites"]), len(meta["reaction_ids"])),
            ).tocsr()
            low, high = z["domain_low"], z["domain_high"]
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"The surrogate artifact {str(d)!r} is inconsistent: {exc}") from exc
    if list(spec.hidden) != list(arch["hidden"]) or spec.n_outputs != arch["n_fluxes"]:
        raise ArtifactError(
            f"The weights in {npath} have hidden sizes {spec.hidden} and {spec.n_outputs} outputs; the json "
            f"records {arch['hidden']} and {arch['n_fluxes']}."
        )
    sur = Surrogate(
        mlp=spec,
        input_names=tuple(meta["input_names"]),
        input_reactions=tuple(meta["input_reactions"]),
        reaction_ids=tuple(meta["reaction_ids"]),
        objective_id=meta["objective_id"],
        domain_low=low,
        domain_high=high,
        training_data_hash=meta["training_data_hash"],
        settings=SurrogateSettings.from_dict(meta["settings"]),
        stoichiometry=S,
        model_id=meta.get("model_id", ""),
        model_hash=meta.get("model_hash", ""),
        metrics=meta.get("metrics", {}),
        info=meta.get("info", {}),
    )
    if dataset is not None:
        reaction_ids = reaction_ids or dataset.reaction_ids
        input_names = input_names or dataset.input_names
        training_data_hash = training_data_hash or dataset.content_hash()
    if reaction_ids is not None and tuple(reaction_ids) != sur.reaction_ids:
        diff = sorted(set(reaction_ids) ^ set(sur.reaction_ids))[:5]
        raise ArtifactError(
            f"The surrogate at {str(d)!r} predicts {len(sur.reaction_ids)} reactions that do not match the "
            f"expected {len(reaction_ids)} (first differences: {diff or 'same ids, different order'})."
        )
    if input_names is not None and tuple(input_names) != sur.input_names:
        raise ArtifactError(f"The surrogate at {str(d)!r} takes inputs {list(sur.input_names)}; expected {list(input_names)}.")
    if training_data_hash is not None and training_data_hash != sur.training_data_hash:
        raise ArtifactError(
            f"The surrogate at {str(d)!r} was trained on data {sur.training_data_hash}, not on the expected data {training_data_hash}."
        )
    return sur


def default_surrogate(model: str = "e_coli_core") -> Surrogate:
    """A surrogate shipped with the package.

    Parameters
    ----------
    model : str
        ``"e_coli_core"`` (default: 95 net fluxes, 3x64 net) or ``"iCH360"`` (the paper's model:
        349 net fluxes, a 4x256 net with kink features); both take glucose and oxygen uptakes
        in 0-20 mmol/gDW/h.

    Raises
    ------
    ArtifactError
        If ``model`` names no shipped surrogate, or its files are missing or corrupted.
    """
    found = shipped_artifact(model)
    if found is None:
        raise ArtifactError(f"The 'model' parameter of default_surrogate must be one of {sorted(SHIPPED_SURROGATES)}; got {model!r}.")
    key, path = found
    if not (path / _JSON).is_file():
        raise ArtifactError(
            f"The shipped {key} surrogate is missing from {path}; reinstall mpc_bio or rebuild it (the command is in docs/surrogate.md)."
        )
    return load_surrogate(path)
