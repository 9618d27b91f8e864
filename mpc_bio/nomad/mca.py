"""Linearisation and metabolic control analysis of every model of an ensemble (batched numpy).

With E = dv/dx (exact, CasADi), N_r and L from the conservation analysis and V the cell volume:

- reduced Jacobian J_r = N_r E L / V (1/h); its eigenvalues give stability and time constants;
- d x / d ln e_j = -L (N_r E L)^{-1} N_r diag(v) (enzyme activity e_j scales Vmax_j);
- concentration control coefficients C^x_ij = (1/x_i) d x_i / d ln e_j;
- flux control coefficients C^v_rj = delta_rj + (1/v_r) sum_i E_ri d x_i / d ln e_j;
- scaled elasticities eps_ri = (x_i / v_r) E_ri.

Summation theorems: sum_j C^v_rj = 1, sum_j C^x_ij = 0 (they follow from N_r v = 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc_bio.nomad.conservation import ConservationAnalysis, analyse_conservation
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import evaluate_rate_jacobian

__all__ = [
    "LinearAnalysis",
    "ControlCoefficients",
    "linearize_ensemble",
    "compute_control_coefficients",
    "load_control_coefficients",
    "compute_control_coefficients_parallel",
    "reduced_jacobian",
]


@dataclass(frozen=True, eq=False)
class LinearAnalysis:
    """Eigenvalues of the reduced Jacobians of a set of models.

    Attributes
    ----------
    model_index : ndarray of int, shape (N,)
        Models of the ensemble analysed.
    eigenvalues : ndarray of complex, shape (N, r)
        Eigenvalues of J_r (1/h).
    max_real : ndarray, shape (N,)
        Largest real part (1/h).
    time_constant : ndarray, shape (N,)
        Dominant time constant -1/max Re(lambda) (h); +inf where max Re >= 0.
    """

    model_index: np.ndarray
    eigenvalues: np.ndarray
    max_real: np.ndarray
    time_constant: np.ndarray


def reduced_jacobian(
    ensemble: KineticEnsemble, index=None, conservation: ConservationAnalysis | None = None, rate_jacobian: np.ndarray | None = None
) -> np.ndarray:
    """J_r = N_r (dv/dx) L / V for the models at ``index`` (N, r, r), in 1/h."""
    cons = conservation or analyse_conservation(ensemble.network)
    E = rate_jacobian if rate_jacobian is not None else evaluate_rate_jacobian(ensemble.network, *ensemble.parameters(index))
    return (cons.reduced_stoichiometry @ E @ cons.link) / ensemble.cell_volume


def linearize_ensemble(ensemble: KineticEnsemble, index=None, conservation: ConservationAnalysis | None = None) -> LinearAnalysis:
    """Eigenvalues and dominant time constants of the models at ``index`` (all by default)."""
    idx = np.arange(ensemble.n_models) if index is None else np.arange(ensemble.n_models)[index]
    Jr = reduced_jacobian(ensemble, idx, conservation)
    ev = np.linalg.eigvals(Jr)
    mr = ev.real.max(axis=1)
    with np.errstate(divide="ignore"):
        tau = np.where(mr < 0, -1.0 / np.where(mr < 0, mr, -1.0), np.inf)
    return LinearAnalysis(idx, ev, mr, tau)


@dataclass(frozen=True, eq=False)
class ControlCoefficients:
    """Log control coefficients of a set of models, with what NRA needs around them.

    This is the data contract of the design stage (NRA). All arrays are stacked over models
    (first axis, ``model_index`` into the ensemble).

    Attributes
    ----------
    model_index : ndarray of int, shape (N,)
    concentration : ndarray, shape (N, n_met, n_enz)
        C^x_ij = d ln x_i / d ln e_j for every balanced metabolite, dependent ones included.
    flux : ndarray, shape (N, n_rxn, n_enz)
        C^v_rj = d ln|v_r| / d ln e_j.
    metabolite_ids, reaction_ids, enzyme_ids : tuple of str
        Row/column ids; enzyme j is the enzyme of reaction j (``enzyme_ids == reaction_ids``).
    stoichiometry : ndarray, shape (n_rxn, n_met)
        d ln Gamma_r / d ln x_i: after log concentration changes dlnx,
        ln(Gamma/Keq)_new = ln_displacement + stoichiometry @ dlnx (boundary metabolites fixed;
        protons and water excluded).
    ln_displacement : ndarray, shape (N, n_rxn)
        Reference ln(Gamma/Keq) = Delta_r G'/RT (negative for positive flux); the irreversible
        growth reaction carries ``GROWTH_LN_DISPLACEMENT`` (-100).
    reference_fluxes : ndarray, shape (N, n_rxn)
        mmol/gDW/h (signed, as in the cobra model).
    reference_concentrations : ndarray, shape (N, n_met)
        mM.
    product_reaction, substrate_reaction, growth_reaction : str
    elasticities : ndarray or None, shape (N, n_rxn, n_met)
        Scaled elasticities (x_i/v_r) dv_r/dx_i when requested.
    """

    model_index: np.ndarray
    concentration: np.ndarray
    flux: np.ndarray
    metabolite_ids: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    enzyme_ids: tuple[str, ...]
    stoichiometry: np.ndarray
    ln_displacement: np.ndarray
    reference_fluxes: np.ndarray
    reference_concentrations: np.ndarray
    product_reaction: str
    substrate_reaction: str
    growth_reaction: str
    elasticities: np.ndarray | None = None

    @property
    def n_models(self) -> int:
        return int(self.model_index.size)

    def yield_control(self) -> np.ndarray:
        """Control coefficients of the product yield on substrate, C^v_product - C^v_substrate (N, n_enz)."""
        p = self.reaction_ids.index(self.product_reaction)
        s = self.reaction_ids.index(self.substrate_reaction)
        return self.flux[:, p, :] - self.flux[:, s, :]

    def select(self, rows) -> "ControlCoefficients":
        """The models at positions ``rows`` of this result."""
        r = np.arange(self.n_models)[rows]
        return ControlCoefficients(
            self.model_index[r],
            self.concentration[r],
            self.flux[r],
            self.metabolite_ids,
            self.reaction_ids,
            self.enzyme_ids,
            self.stoichiometry,
            self.ln_displacement[r],
            self.reference_fluxes[r],
            self.reference_concentrations[r],
            self.product_reaction,
            self.substrate_reaction,
            self.growth_reaction,
            None if self.elasticities is None else self.elasticities[r],
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``control_coefficients.npz`` + ``control_coefficients.json`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            model_index=self.model_index,
            concentration=self.concentration,
            flux=self.flux,
            stoichiometry=self.stoichiometry,
            ln_displacement=self.ln_displacement,
            reference_fluxes=self.reference_fluxes,
            reference_concentrations=self.reference_concentrations,
        )
        if self.elasticities is not None:
            arrays["elasticities"] = self.elasticities
        np.savez_compressed(d / "control_coefficients.npz", **arrays)
        meta = dict(
            format="mpc_bio.nomad.control_coefficients/1",
            metabolite_ids=list(self.metabolite_ids),
            reaction_ids=list(self.reaction_ids),
            enzyme_ids=list(self.enzyme_ids),
            product_reaction=self.product_reaction,
            substrate_reaction=self.substrate_reaction,
            growth_reaction=self.growth_reaction,
        )
        (d / "control_coefficients.json").write_text(json.dumps(meta, indent=1))
        return d


def load_control_coefficients(directory: str | Path) -> ControlCoefficients:
    """Read what :meth:`ControlCoefficients.save` wrote."""
    d = Path(directory)
    if not (d / "control_coefficients.json").is_file():
        raise FileNotFoundError(f"{str(d / 'control_coefficients.json')!r} does not exist.")
    meta = json.loads((d / "control_coefficients.json").read_text())
    with np.load(d / "control_coefficients.npz") as z:
        a = {k: z[k] for k in z.files}
    return ControlCoefficients(
        a["model_index"].astype(int),
        a["concentration"],
        a["flux"],
        tuple(meta["metabolite_ids"]),
        tuple(meta["reaction_ids"]),
        tuple(meta["enzyme_ids"]),
        a["stoichiometry"],
        a["ln_displacement"],
        a["reference_fluxes"],
        a["reference_concentrations"],
        meta["product_reaction"],
        meta["substrate_reaction"],
        meta["growth_reaction"],
        a.get("elasticities"),
    )


def compute_control_coefficients(
    ensemble: KineticEnsemble, index=None, conservation: ConservationAnalysis | None = None, keep_elasticities: bool = False
) -> ControlCoefficients:
    """Concentration and flux control coefficients w.r.t. every enzyme, for the models at ``index``.

    Parameters
    ----------
    ensemble : KineticEnsemble
    index : array of int or bool mask, optional
        Models to analyse (default all). They must be stable (J_r invertible).
    conservation : ConservationAnalysis, optional
        Reused when given.
    keep_elasticities : bool
        Also return the scaled elasticities (memory: N x n_rxn x n_met doubles).

    Raises
    ------
    numpy.linalg.LinAlgError
        If a reduced Jacobian is singular.
    """
    net = ensemble.network
    cons = conservation or analyse_conservation(net)
    idx = np.arange(ensemble.n_models) if index is None else np.arange(ensemble.n_models)[index]
    x, xf, K, lk, vm = ensemble.parameters(idx)
    if idx.size == 0:
        E = np.zeros((0, net.n_reactions, net.n_metabolites))
    else:
        E = evaluate_rate_jacobian(net, x, xf, K, lk, vm)
        if E.ndim == 2:
            E = E[None]
    v = ensemble.fluxes[idx]
    Nr, L = cons.reduced_stoichiometry, cons.link
    A = Nr @ E @ L  # (N, r, r)
    B = Nr[None, :, :] * v[:, None, :]  # N_r diag(v): (N, r, n_rxn)
    dxi = -np.linalg.solve(A, B)  # (N, r, n_enz)
    dx = L @ dxi
    Cx = dx / x[:, :, None]
    Cv = np.eye(net.n_reactions)[None] + (E @ dx) / v[:, :, None]
    eps = E * x[:, None, :] / v[:, :, None] if keep_elasticities else None
    return ControlCoefficients(
        model_index=idx,
        concentration=Cx,
        flux=Cv,
        metabolite_ids=net.metabolite_ids,
        reaction_ids=net.reaction_ids,
        enzyme_ids=net.reaction_ids,
        stoichiometry=net.stoichiometry.T.copy(),
        ln_displacement=ensemble.ln_displacement[idx],
        reference_fluxes=np.array(v),
        reference_concentrations=x,
        product_reaction=net.product_reaction,
        substrate_reaction=net.substrate_reaction,
        growth_reaction=net.growth_reaction,
        elasticities=eps,
    )


def _cc_chunk(args) -> ControlCoefficients:
    sub, keep = args
    return compute_control_coefficients(sub, keep_elasticities=keep)


def compute_control_coefficients_parallel(
    ensemble: KineticEnsemble, index=None, executor=None, keep_elasticities: bool = False
) -> ControlCoefficients:
    """:func:`compute_control_coefficients` in chunks on an executor (local processes or Dask).

    Parameters
    ----------
    executor : ExecutorSettings, optional
        Defaults to in-process evaluation.
    """
    from mpc_bio.nomad.executor import chunk_indices, run_chunks
    from mpc_bio.nomad.settings import ExecutorSettings

    executor = executor or ExecutorSettings()
    idx = np.arange(ensemble.n_models) if index is None else np.arange(ensemble.n_models)[index]
    chunks = chunk_indices(idx, executor.chunk_size)
    if not chunks:
        return compute_control_coefficients(ensemble, idx)
    parts = run_chunks(_cc_chunk, [(ensemble.subset(c), keep_elasticities) for c in chunks], executor, desc="MCA")
    first = parts[0]
    return ControlCoefficients(
        model_index=idx,
        concentration=np.concatenate([p.concentration for p in parts]),
        flux=np.concatenate([p.flux for p in parts]),
        metabolite_ids=first.metabolite_ids,
        reaction_ids=first.reaction_ids,
        enzyme_ids=first.enzyme_ids,
        stoichiometry=first.stoichiometry,
        ln_displacement=np.concatenate([p.ln_displacement for p in parts]),
        reference_fluxes=np.concatenate([p.reference_fluxes for p in parts]),
        reference_concentrations=np.concatenate([p.reference_concentrations for p in parts]),
        product_reaction=first.product_reaction,
        substrate_reaction=first.substrate_reaction,
        growth_reaction=first.growth_reaction,
        elasticities=None if not keep_elasticities else np.concatenate([p.elasticities for p in parts]),
    )
