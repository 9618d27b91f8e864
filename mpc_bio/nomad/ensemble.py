"""ORACLE-style ensembles of kinetic models around sampled reference steady states.

Per model: a reference state (concentrations, displacements, Keq) and, per saturation slot,
sigma ~ U(low, high), Km = x (1 - sigma) / sigma (so sigma = x / (x + Km)), except the slots of
``km_ranges`` (Km known from the literature: log-uniform in its range, sigma following); then
Vmax = v_ref / rate(x_ref; Km, Keq, Vmax = 1), with v_ref the fluxes of the model's reference
state. Every model reproduces its reference fluxes at its reference concentrations by construction. Saved as ``ensemble.npz`` + ``ensemble.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpc_bio.nomad.kinetics import evaluate_rates
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.settings import SamplingSettings
from mpc_bio.nomad.steady_state import ReferenceStates

__all__ = ["KineticEnsemble", "sample_ensemble", "load_ensemble", "km_range_slots"]

_FORMAT = "mpc_bio.nomad.ensemble/1"


@dataclass(frozen=True, eq=False)
class KineticEnsemble:
    """A population of kinetic models of one network.

    Attributes
    ----------
    network : KineticNetwork
    states : ReferenceStates
        The distinct reference steady states.
    state_index : ndarray of int, shape (N,)
        Reference state of each model.
    saturations : ndarray, shape (N, n_slots)
        Sampled saturations sigma (dimensionless).
    km : ndarray, shape (N, n_slots)
        Saturation constants (mM).
    vmax : ndarray, shape (N, n_rxn)
        Maximal rates (mmol/gDW/h).
    cell_volume : float
        L/gDW.
    seed : int
    """

    network: KineticNetwork
    states: ReferenceStates
    state_index: np.ndarray
    saturations: np.ndarray
    km: np.ndarray
    vmax: np.ndarray
    cell_volume: float
    seed: int

    @property
    def n_models(self) -> int:
        return int(self.vmax.shape[0])

    @property
    def concentrations(self) -> np.ndarray:
        """Reference concentrations per model (N, n_met), mM."""
        return self.states.concentrations[self.state_index]

    @property
    def fluxes(self) -> np.ndarray:
        """Reference fluxes per model (N, n_rxn), mmol/gDW/h: those of its reference state."""
        return self.states.state_fluxes[self.state_index]

    @property
    def ln_keq(self) -> np.ndarray:
        return self.states.ln_keq[self.state_index]

    @property
    def ln_displacement(self) -> np.ndarray:
        return self.states.ln_displacement[self.state_index]

    @property
    def fixed_concentrations(self) -> np.ndarray:
        return self.states.fixed_concentrations

    def subset(self, index) -> "KineticEnsemble":
        """The models at ``index`` (integer array or boolean mask)."""
        idx = np.arange(self.n_models)[index]
        return KineticEnsemble(
            self.network,
            self.states,
            self.state_index[idx],
            self.saturations[idx],
            self.km[idx],
            self.vmax[idx],
            self.cell_volume,
            self.seed,
        )

    def parameters(self, index=None) -> tuple[np.ndarray, ...]:
        """(x_ref, x_fixed, K, ln_keq, vmax) stacked over models, the inputs of the rate functions."""
        idx = np.arange(self.n_models) if index is None else np.arange(self.n_models)[index]
        s = self.state_index[idx]
        return (self.states.concentrations[s], self.states.fixed_concentrations, self.km[idx], self.states.ln_keq[s], self.vmax[idx])

    def save(self, directory: str | Path) -> Path:
        """Write ``ensemble.npz`` and ``ensemble.json`` into ``directory``; returns the directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            concentrations=self.states.concentrations,
            fixed_concentrations=self.states.fixed_concentrations,
            ln_displacement=self.states.ln_displacement,
            ln_keq=self.states.ln_keq,
            fluxes=self.states.fluxes,
            state_index=self.state_index,
            saturations=self.saturations,
            km=self.km,
            vmax=self.vmax,
        )
        if self.states.dg0 is not None:
            arrays["dg0"] = self.states.dg0
        np.savez_compressed(d / "ensemble.npz", **arrays)
        meta = {
            "format": _FORMAT,
            "cell_volume": self.cell_volume,
            "seed": self.seed,
            "n_models": self.n_models,
            "network": self.network.to_dict(),
        }
        (d / "ensemble.json").write_text(json.dumps(meta, indent=1))
        return d


def load_ensemble(directory: str | Path) -> KineticEnsemble:
    """Read an ensemble written by :meth:`KineticEnsemble.save`."""
    d = Path(directory)
    for name in ("ensemble.npz", "ensemble.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{str(d / name)!r} does not exist; is {str(d)!r} an ensemble directory?")
    meta = json.loads((d / "ensemble.json").read_text())
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{str(d / 'ensemble.json')!r} has format {meta.get('format')!r}; expected {_FORMAT!r}.")
    with np.load(d / "ensemble.npz") as z:
        a = {k: z[k] for k in z.files}
    states = ReferenceStates(a["concentrations"], a["fixed_concentrations"], a["ln_displacement"], a["ln_keq"], a["fluxes"], a.get("dg0"))
    return KineticEnsemble(
        KineticNetwork.from_dict(meta["network"]),
        states,
        a["state_index"].astype(int),
        a["saturations"],
        a["km"],
        a["vmax"],
        float(meta["cell_volume"]),
        int(meta["seed"]),
    )


def _uniform_rows(seed: list[int], lo, hi, width: int, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of one seeded (N, width) uniform draw in [lo, hi) (bounds broadcast per column).

    Model m's row is the m-th row of ``default_rng(seed).uniform(lo, hi, (N, width))``; each
    contiguous run of ``index`` advances the generator to its first row (PCG64 draws one 64-bit
    word per double), so any slice of the population is sampled without the rows before it.
    """
    out = np.empty((index.size, width))
    if index.size == 0 or width == 0:
        return out
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, index.size]):
        rng = np.random.default_rng(seed)
        if index[a]:
            rng.bit_generator.advance(int(index[a]) * width)
        out[a:b] = rng.uniform(lo, hi, size=(b - a, width))
    return out


def _saturations(settings: SamplingSettings, n_slots: int, index: np.ndarray) -> np.ndarray:
    """Saturations of the models numbered ``index``: rows of one seeded (N, n_slots) uniform draw
    (``default_rng([seed, 7])``, see :func:`_uniform_rows`)."""
    lo, hi = settings.saturation_bounds
    return _uniform_rows([settings.seed, 7], lo, hi, n_slots, index)


def km_range_slots(network: KineticNetwork, settings: SamplingSettings) -> list[np.ndarray]:
    """Saturation slots of each ``settings.km_ranges`` entry: the Michaelis slots (substrate or
    product, not regulation) of that reaction and species.

    Raises
    ------
    ValueError
        If an entry names a reaction or metabolite not in the network, or a pair without a slot.
    """
    species = {m: i for i, m in enumerate(network.species_ids)}
    out = []
    for rid, mid, _, _ in settings.km_ranges:
        if rid not in network.reaction_ids or mid not in species:
            raise ValueError(
                f"sampling.km_ranges names reaction {rid!r} and metabolite {mid!r}; "
                f"{'the reaction' if rid not in network.reaction_ids else 'the metabolite'} is not in the network."
            )
        slots = np.flatnonzero(
            (network.slot_reaction == network.reaction_index(rid))
            & (network.slot_species == species[mid])
            & (np.abs(network.slot_role) == 1)
        )
        if slots.size == 0:
            raise ValueError(f"sampling.km_ranges: {mid!r} is neither a substrate nor a product in the rate law of {rid!r}.")
        out.append(slots)
    return out


def sample_ensemble(
    network: KineticNetwork, states: ReferenceStates, settings: SamplingSettings | None = None, index=None
) -> KineticEnsemble:
    """Sample kinetic models (ORACLE), spread evenly over the reference states.

    The population has ``settings.n_models`` models numbered 0..N-1; model m uses reference state
    m mod n_states and its own row of saturations, so any subset (``index``) is sampled exactly as
    in the whole population (chunks of a large population are sampled independently, in any order).

    Parameters
    ----------
    network : KineticNetwork
    states : ReferenceStates
        From :func:`~mpc_bio.nomad.steady_state.sample_reference_states`.
    settings : SamplingSettings, optional
        Number of models, saturation bounds, cell volume and seed.
    index : array of int, optional
        Model numbers to sample (each in 0..n_models-1, increasing); default all.

    Returns
    -------
    KineticEnsemble
        The models at ``index``, in that order.

    Raises
    ------
    ValueError
        If ``index`` leaves 0..n_models-1 or decreases, or a unit-Vmax rate has the wrong sign or
        is zero (inconsistent displacement).
    """
    settings = settings or SamplingSettings()
    N = settings.n_models
    if index is None:
        index = np.arange(N)
    else:
        index = np.asarray(index, dtype=int).ravel()
        if index.size and (index.min() < 0 or index.max() >= N or np.any(np.diff(index) <= 0)):
            raise ValueError(
                f"The 'index' parameter of sample_ensemble must hold increasing model numbers in 0..{N - 1} "
                f"(n_models = {N}). Got values from {int(index.min())} to {int(index.max())}"
                f"{' (not increasing)' if np.any(np.diff(index) <= 0) else ''}."
            )
    n = index.size
    state_index = index % states.n_states
    sigma = _saturations(settings, network.n_slots, index)
    species = np.hstack([states.concentrations[state_index], np.broadcast_to(states.fixed_concentrations, (n, network.n_fixed))])
    x_slot = species[:, network.slot_species]
    km = x_slot * (1.0 - sigma) / sigma
    if settings.km_ranges:
        # literature Km: log-uniform in [low, high] per entry, its own seeded stream; saturation follows
        ln_lo = np.log([e[2] for e in settings.km_ranges])
        ln_hi = np.log([e[3] for e in settings.km_ranges])
        ln_km = _uniform_rows([settings.seed, 11], ln_lo, ln_hi, len(settings.km_ranges), index)
        for k, slots in enumerate(km_range_slots(network, settings)):
            km[:, slots] = np.exp(ln_km[:, k])[:, None]
            sigma[:, slots] = x_slot[:, slots] / (x_slot[:, slots] + km[:, slots])
    unit = evaluate_rates(
        network,
        states.concentrations[state_index],
        states.fixed_concentrations,
        km,
        states.ln_keq[state_index],
        np.ones((n, network.n_reactions)),
    )
    unit = np.atleast_2d(unit)
    v_ref = states.state_fluxes[state_index]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = v_ref / unit
    if not np.all(np.isfinite(ratio)) or np.any(ratio <= 0):
        bad = np.argwhere(~(np.isfinite(ratio) & (ratio > 0)))[0]
        raise ValueError(
            f"Model {int(index[bad[0]])}, reaction {network.reaction_ids[bad[1]]!r}: the rate at Vmax = 1 is {unit[tuple(bad)]!r} "
            f"for a reference flux {v_ref[tuple(bad)]!r}; displacement and flux directions disagree."
        )
    return KineticEnsemble(network, states, state_index, sigma, km, ratio, settings.cell_volume, settings.seed)
