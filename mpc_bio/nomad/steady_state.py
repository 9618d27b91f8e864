"""Reference steady states: concentrations, thermodynamic displacements and equilibrium constants.

The fluxes come from the network's pFBA. Concentrations of balanced metabolites are sampled
log-uniformly within physiological bounds; boundary metabolites are fixed. Per reaction the
displacement ln(Gamma/Keq) = Delta_r G'/RT is sampled with the sign opposite to the flux, and
ln Keq = ln Gamma - ln(Gamma/Keq), so fluxes, concentrations and Keq are consistent.

With component-contribution estimates of Delta_r G'0 (iCH360 ships them), concentrations and
Delta_r G'0 = mean + Q z are sampled jointly by hit-and-run inside the polytope
{ln x in bounds, |z| <= z_bound, sign(v) Delta_r G'/RT <= -min_driving_force} (as NOMAD's TFA step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mpc_bio.nomad.network import KineticNetwork, NetworkError
from mpc_bio.nomad.settings import SteadyStateSettings

__all__ = [
    "GAS_CONSTANT",
    "GROWTH_LN_DISPLACEMENT",
    "ReferenceStates",
    "ThermodynamicData",
    "load_dg0",
    "sample_reference_states",
]

#: Gas constant (kJ/mol/K).
GAS_CONSTANT = 8.314462618e-3
#: ln(Gamma/Keq) recorded for the irreversible lumped growth reaction (far from equilibrium).
GROWTH_LN_DISPLACEMENT = -100.0


@dataclass(frozen=True, eq=False)
class ThermodynamicData:
    """Component-contribution Delta_r G'0 estimates: dG0 ~ N(mean, Q Q^T) (kJ/mol).

    Reactions with a variance above ``max_variance`` (no estimate) are left unconstrained.
    """

    reaction_ids: tuple[str, ...]
    mean: np.ndarray
    cov_sqrt: np.ndarray
    max_variance: float = 1e6


def load_dg0(mean_path, cov_sqrt_path) -> ThermodynamicData:
    """Read ``drg0_prime_mean.csv`` and ``drg0_cov_sqrt.csv`` (first column: reaction id)."""
    mean = pd.read_csv(mean_path, index_col=0).iloc[:, 0]
    q = pd.read_csv(cov_sqrt_path, index_col=0)
    if list(q.index) != list(mean.index):
        q = q.reindex(mean.index)
    if q.isna().any().any():
        raise ValueError(f"The dG'0 covariance {cov_sqrt_path!s} does not cover every reaction of {mean_path!s}.")
    return ThermodynamicData(tuple(str(i) for i in mean.index), mean.to_numpy(float), q.to_numpy(float))


@dataclass(frozen=True, eq=False)
class ReferenceStates:
    """Sampled reference steady states of one network.

    Attributes
    ----------
    concentrations : ndarray, shape (n_states, n_met)
        Balanced metabolite concentrations (mM).
    fixed_concentrations : ndarray, shape (n_fixed,)
        Boundary metabolite concentrations (mM).
    ln_displacement : ndarray, shape (n_states, n_rxn)
        ln(Gamma/Keq) = Delta_r G'/RT per reaction, sign opposite to the flux.
    ln_keq : ndarray, shape (n_states, n_rxn)
        ln Keq (concentrations in mM) consistent with both.
    fluxes : ndarray, shape (n_rxn,)
        Reference fluxes (mmol/gDW/h).
    dg0 : ndarray or None, shape (n_states, n_rxn)
        Sampled Delta_r G'0 (kJ/mol, concentrations in M) in the thermodynamic case, NaN where unknown.
    """

    concentrations: np.ndarray
    fixed_concentrations: np.ndarray
    ln_displacement: np.ndarray
    ln_keq: np.ndarray
    fluxes: np.ndarray
    dg0: np.ndarray | None = None

    @property
    def n_states(self) -> int:
        return int(self.concentrations.shape[0])


def _bounds(network: KineticNetwork, settings: SteadyStateSettings) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(network.n_metabolites, settings.concentration_bounds[0])
    hi = np.full(network.n_metabolites, settings.concentration_bounds[1])
    idx = {m: i for i, m in enumerate(network.metabolite_ids)}
    for mid, a, b in settings.metabolite_bounds:
        if mid not in idx:
            raise ValueError(f"steady_state.metabolite_bounds names {mid!r}, which is not a balanced metabolite.")
        lo[idx[mid]], hi[idx[mid]] = a, b
    return lo, hi


def _fixed(network: KineticNetwork, settings: SteadyStateSettings) -> np.ndarray:
    given = dict(settings.fixed_concentrations)
    return np.array([float(given.get(m, settings.default_fixed_concentration)) for m in network.fixed_ids])


def ln_mass_action_ratio(network: KineticNetwork, ln_x: np.ndarray, ln_fixed: np.ndarray) -> np.ndarray:
    """ln Gamma per reaction (rows of ``ln_x``: states), h and h2o excluded (mM basis)."""
    return np.atleast_2d(ln_x) @ network.stoichiometry + ln_fixed @ network.fixed_stoichiometry


def sample_reference_states(
    network: KineticNetwork,
    settings: SteadyStateSettings | None = None,
    n_states: int | None = None,
    seed: int = 0,
    thermodynamics: ThermodynamicData | None = None,
) -> ReferenceStates:
    """Sample ``n_states`` reference steady states consistent with the network's fluxes.

    Parameters
    ----------
    network : KineticNetwork
    settings : SteadyStateSettings, optional
    n_states : int, optional
        Overrides ``settings.n_states``.
    seed : int
        Seed of every draw.
    thermodynamics : ThermodynamicData, optional
        Delta_r G'0 estimates; when ``None`` and the settings name CSV files, they are read.

    Returns
    -------
    ReferenceStates

    Raises
    ------
    NetworkError
        If a reference flux is zero, or no concentrations satisfy the dG'0 sign constraints.
    """
    settings = settings or SteadyStateSettings()
    n = int(n_states or settings.n_states)
    rng = np.random.default_rng(seed)
    if np.any(np.abs(network.fluxes) == 0):
        zero = [r for r, v in zip(network.reaction_ids, network.fluxes) if v == 0]
        raise NetworkError(f"Reactions {zero} carry no reference flux; their displacement direction is undefined.")
    lo, hi = _bounds(network, settings)
    fixed = _fixed(network, settings)
    ln_fixed = np.log(fixed)
    sign = np.sign(network.fluxes)
    if thermodynamics is None and settings.dg0_mean_path is not None:
        thermodynamics = load_dg0(settings.dg0_mean_path, settings.dg0_cov_sqrt_path)
    d_lo, d_hi = settings.displacement_range
    ln_disp = -sign * rng.uniform(d_lo, d_hi, size=(n, network.n_reactions))
    dg0_out = None
    if thermodynamics is None:
        ln_x = rng.uniform(np.log(lo), np.log(hi), size=(n, network.n_metabolites))
    else:
        ln_x, dg0_out, ln_disp_t, known = _sample_thermodynamic(
            network, thermodynamics, np.log(lo), np.log(hi), ln_fixed, settings, n, rng
        )
        ln_disp[:, known] = ln_disp_t[:, known]
    g = network.reaction_ids.index(network.growth_reaction)
    ln_disp[:, g] = GROWTH_LN_DISPLACEMENT
    ln_gamma = ln_mass_action_ratio(network, ln_x, ln_fixed)
    return ReferenceStates(
        concentrations=np.exp(ln_x),
        fixed_concentrations=fixed,
        ln_displacement=ln_disp,
        ln_keq=ln_gamma - ln_disp,
        fluxes=network.fluxes.copy(),
        dg0=dg0_out,
    )


def _sample_thermodynamic(network, thermo, ln_lo, ln_hi, ln_fixed, settings, n, rng):
    """Hit-and-run over (ln x, z) with Delta_r G' sign constraints; returns ln_x, dG0, ln_disp, known mask."""
    from scipy.optimize import linprog

    rt = GAS_CONSTANT * settings.temperature
    index = {r: i for i, r in enumerate(thermo.reaction_ids)}
    var = np.sum(thermo.cov_sqrt ** 2, axis=1)
    rows = [j for j, r in enumerate(network.reaction_ids)
            if r in index and var[index[r]] <= thermo.max_variance and network.rate_laws[j] != "growth"]
    known = np.zeros(network.n_reactions, dtype=bool)
    known[rows] = True
    n_met, n_z = network.n_metabolites, thermo.cov_sqrt.shape[1]
    # Delta_r G'0 is in the 1 M standard state; concentrations here are mM: ln(x[M]) = ln(x[mM]) - ln 1000.
    # Delta_r G'/RT = (mu + Q z)/RT + sum_i nu_i (ln x_i - ln 1000).
    mu = np.array([thermo.mean[index[network.reaction_ids[j]]] for j in rows])
    Q = np.array([thermo.cov_sqrt[index[network.reaction_ids[j]]] for j in rows]).reshape(len(rows), n_z)
    Sb = network.stoichiometry[:, rows].T
    Sf = network.fixed_stoichiometry[:, rows].T
    conc_shift = (Sb.sum(axis=1) + Sf.sum(axis=1)) * np.log(1e-3)
    const = mu / rt + Sf @ ln_fixed + conc_shift
    s = np.sign(network.fluxes[rows])
    # s * (Sb lnx + Q z / rt + const) <= -min_df
    A = np.hstack([s[:, None] * Sb, s[:, None] * Q / rt])
    b = -settings.min_driving_force - s * const
    lo = np.concatenate([ln_lo, np.full(n_z, -settings.dg0_z_bound)])
    hi = np.concatenate([ln_hi, np.full(n_z, settings.dg0_z_bound)])
    # Chebyshev-like interior point: maximise the slack t of the sign constraints within the box.
    dim = A.shape[1]
    norms = np.linalg.norm(A, axis=1)
    c = np.zeros(dim + 1)
    c[-1] = -1.0
    A_ub = np.hstack([A, norms[:, None]])
    res = linprog(c, A_ub=A_ub, b_ub=b, bounds=list(zip(lo, hi)) + [(0, 1.0)], method="highs")
    if res.status != 0 or res.x[-1] <= 1e-9:
        raise NetworkError(
            "No concentrations within the bounds and dG'0 within its uncertainty make every reaction's "
            f"Delta_r G' agree with its flux direction (LP status {res.status}: {res.message}). Widen "
            "steady_state.concentration_bounds or dg0_z_bound, or drop the conflicting reactions."
        )
    y = res.x[:-1]
    thin = settings.hit_and_run_thinning
    out = np.empty((n, dim))
    burn = 10 * thin
    k = 0
    for step in range(burn + n * thin):
        d = rng.standard_normal(dim)
        d /= np.linalg.norm(d)
        # box: lo <= y + t d <= hi
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - y) / d
            t2 = (hi - y) / d
        tmin = np.max(np.where(d != 0, np.minimum(t1, t2), -np.inf))
        tmax = np.min(np.where(d != 0, np.maximum(t1, t2), np.inf))
        ad = A @ d
        slack = b - A @ y
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = slack / ad
        if np.any(ad > 0):
            tmax = min(tmax, np.min(tc[ad > 0]))
        if np.any(ad < 0):
            tmin = max(tmin, np.max(tc[ad < 0]))
        if tmax > tmin:
            y = y + rng.uniform(tmin, tmax) * d
        if step >= burn and (step - burn) % thin == thin - 1:
            out[k] = y
            k += 1
    ln_x = out[:, :n_met]
    z = out[:, n_met:]
    dg0 = np.full((n, network.n_reactions), np.nan)
    dg0[:, rows] = mu + z @ Q.T
    ln_disp = np.zeros((n, network.n_reactions))
    ln_disp[:, rows] = dg0[:, rows] / rt + ln_x @ Sb.T + Sf @ ln_fixed + conc_shift
    return ln_x, dg0, ln_disp, known
