"""Reference steady states: fluxes, concentrations, reaction Gibbs energies and equilibrium constants.

Two methods (``SteadyStateSettings.method``):

``"tfa"`` (thermodynamics-based, as NOMAD's TFA step): with component-contribution estimates
Delta_r G'0 ~ N(mean, Q Q^T) (iCH360 ships them), the log-concentrations and
Delta_r G'0 = mean + Q z are sampled jointly, uniformly by hit-and-run inside the polytope

    ln x_i in [ln lo_i, ln hi_i],  |z_k| <= z_bound,
    sign(v_j) Delta_r G'_j / RT <= -min_driving_force,
    Delta_r G'_j = Delta_r G'0_j + RT sum_i nu_ij ln(x_i / 1 M),

so every reaction's Gibbs energy is opposite to its flux with at least the minimal displacement.
Balanced metabolites take physiological ranges (cofactors from measured E. coli
concentrations, :data:`PHYSIOLOGICAL_CONCENTRATIONS`), boundary metabolites are fixed.
Transports of one species between compartments without an estimate get Delta_r G'0 = 0; any
other reaction without one (and the irreversible growth reaction) falls back to a sampled
displacement (its ``dg0`` is NaN). The equilibrium constants follow from the sampled
Delta_r G'0, ln Keq = -Delta_r G'0/RT (1 M standard, converted to mM). The fluxes of each state are sampled by hit-and-run too, inside
{S v = 0, substrate and product at their reference, growth >= flux_growth_fraction of the
reference, each |v_j| within a factor flux_fold of the reference and the model bounds}, so the directions stay those
of the reference (with fixed directions the flux and thermodynamic polytopes are independent).

``"displacement"``: fluxes are the network's reference, log-concentrations uniform in their
bounds, |ln(Gamma/Keq)| uniform in ``displacement_range`` with the sign opposite to the flux, and
ln Keq = ln Gamma - ln(Gamma/Keq) per state (no Gibbs-energy data needed; the fast option).

``"auto"`` (default) is ``"tfa"`` when estimates are available (files given, or the network comes
from the shipped iCH360), ``"displacement"`` otherwise.
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
    "PHYSIOLOGICAL_CONCENTRATIONS",
    "ReferenceStates",
    "ThermodynamicData",
    "cofactor_ratios",
    "hit_and_run",
    "load_dg0",
    "medium_exchange_bounds",
    "sample_reference_states",
    "thermodynamic_data_for",
]

#: Gas constant (kJ/mol/K).
GAS_CONSTANT = 8.314462618e-3
#: ln(Gamma/Keq) recorded for the irreversible lumped growth reaction (far from equilibrium).
GROWTH_LN_DISPLACEMENT = -100.0
#: Measured concentrations (mM) of E. coli growing exponentially on glucose (Bennett et al. 2009,
#: Nat Chem Biol 5:593, absolute metabolite concentrations); the "tfa" method bounds these
#: metabolites within a factor ``physiological_fold`` of them.
PHYSIOLOGICAL_CONCENTRATIONS: dict[str, float] = {
    "atp_c": 9.63,
    "adp_c": 0.555,
    "amp_c": 0.281,
    "nad_c": 2.55,
    "nadh_c": 0.0836,
    "nadp_c": 0.00208,
    "nadph_c": 0.121,
    "accoa_c": 0.606,
    "coa_c": 1.37,
    "glu__L_c": 96.0,
    "gln__L_c": 3.81,
}


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


def thermodynamic_data_for(network: KineticNetwork, settings: SteadyStateSettings) -> ThermodynamicData | None:
    """The Delta_r G'0 estimates the settings ask for: the given files, else the shipped iCH360 ones for
    a network built from iCH360 (unless ``method = "displacement"``), else ``None``."""
    if settings.method == "displacement":
        return None
    if settings.dg0_mean_path is not None:
        return load_dg0(settings.dg0_mean_path, settings.dg0_cov_sqrt_path)
    if network.model_id.lower().startswith("ich360"):
        from mpc_bio.metabolism.models import ich360_gibbs_energy_files

        return load_dg0(*ich360_gibbs_energy_files())
    if settings.method == "tfa":
        raise NetworkError(
            f"steady_state.method = 'tfa' needs Delta_r G'0 estimates: network {network.model_id!r} is not from "
            f"iCH360 and steady_state.dg0_mean_path is not set."
        )
    return None


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
    fluxes : ndarray, shape (n_states, n_rxn) or (n_rxn,)
        Fluxes of each state (mmol/gDW/h); one row shared by every state in the "displacement" method.
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

    @property
    def state_fluxes(self) -> np.ndarray:
        """Fluxes per state, (n_states, n_rxn) (mmol/gDW/h)."""
        f = np.asarray(self.fluxes, dtype=float)
        return np.broadcast_to(f, (self.n_states, f.shape[-1])) if f.ndim == 1 else f


def _bounds(network: KineticNetwork, settings: SteadyStateSettings, physiological: bool) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(network.n_metabolites, settings.concentration_bounds[0])
    hi = np.full(network.n_metabolites, settings.concentration_bounds[1])
    idx = {m: i for i, m in enumerate(network.metabolite_ids)}
    if physiological:
        f = settings.physiological_fold
        for mid, val in PHYSIOLOGICAL_CONCENTRATIONS.items():
            if mid in idx:
                lo[idx[mid]], hi[idx[mid]] = val / f, val * f
    for mid, (a, b) in medium_exchange_bounds(network, settings).items():
        lo[idx[mid]], hi[idx[mid]] = a, b
    for mid, a, b in settings.metabolite_bounds:
        if mid not in idx:
            raise ValueError(f"steady_state.metabolite_bounds names {mid!r}, which is not a balanced metabolite.")
        lo[idx[mid]], hi[idx[mid]] = a, b
    return lo, hi


def medium_exchange_bounds(network: KineticNetwork, settings: SteadyStateSettings) -> dict[str, tuple[float, float]]:
    """Bounds of the balanced metabolites in direct exchange with the medium (mmol/L).

    A balanced metabolite whose compartment (the id's suffix after the last ``_``) is one of
    ``settings.medium_exchange_compartments`` and whose base id names a boundary species
    (``glc__D_p`` and ``glc__D_e``) gets ``[c / f, c * f]``, c the boundary species' fixed
    concentration and f ``settings.medium_exchange_fold``; empty when the fold is None.
    ``metabolite_bounds`` override these.
    """
    f = settings.medium_exchange_fold
    if f is None:
        return {}
    fixed = dict(zip(network.fixed_ids, _fixed(network, settings)))
    medium = {m.rsplit("_", 1)[0]: c for m, c in fixed.items() if "_" in m}
    out = {}
    for mid in network.metabolite_ids:
        base, _, comp = mid.rpartition("_")
        if base and comp in settings.medium_exchange_compartments and base in medium:
            out[mid] = (float(medium[base] / f), float(medium[base] * f))
    return out


def _fixed(network: KineticNetwork, settings: SteadyStateSettings) -> np.ndarray:
    given = dict(settings.fixed_concentrations)
    return np.array([float(given.get(m, settings.default_fixed_concentration)) for m in network.fixed_ids])


def ln_mass_action_ratio(network: KineticNetwork, ln_x: np.ndarray, ln_fixed: np.ndarray) -> np.ndarray:
    """ln Gamma per reaction (rows of ``ln_x``: states), h and h2o excluded (mM basis)."""
    return np.atleast_2d(ln_x) @ network.stoichiometry + ln_fixed @ network.fixed_stoichiometry


def cofactor_ratios(network: KineticNetwork, states: ReferenceStates) -> dict[str, np.ndarray]:
    """Energy charge (ATP + ADP/2)/(ATP + ADP + AMP) and the ATP/ADP, NADH/NAD, NADPH/NADP ratios
    per state (dimensionless), for those whose metabolites are in the network (cytosol)."""
    idx = {m: i for i, m in enumerate(network.metabolite_ids)}
    x = states.concentrations

    def c(mid):
        return x[:, idx[mid]]

    out: dict[str, np.ndarray] = {}
    if {"atp_c", "adp_c", "amp_c"} <= idx.keys():
        out["energy_charge"] = (c("atp_c") + 0.5 * c("adp_c")) / (c("atp_c") + c("adp_c") + c("amp_c"))
    for name, a, b in (("atp_adp", "atp_c", "adp_c"), ("nadh_nad", "nadh_c", "nad_c"), ("nadph_nadp", "nadph_c", "nadp_c")):
        if a in idx and b in idx:
            out[name] = c(a) / c(b)
    return out


def hit_and_run(
    G: np.ndarray, h: np.ndarray, y0: np.ndarray, n: int, thinning: int, rng: np.random.Generator, burn_in: int | None = None, rounding=True
) -> np.ndarray:
    """Uniform samples of the polytope {y : G y <= h} by hit-and-run from the interior point ``y0``.

    Each step draws a direction uniformly on the sphere and a point uniformly on the chord through
    the current point. Thin, elongated polytopes mix slowly, so with ``rounding`` the chain runs in
    coordinates u, y = y0 + L u, where L L^T is the covariance of the polytope's extreme points
    along every coordinate (2 dim HiGHS LPs; ``rounding`` may list the coordinates to use); a
    linear map keeps the distribution uniform.
    ``thinning`` steps separate kept samples, ``burn_in`` (default 10 thinning intervals) are
    discarded. Returns an (n, dim) array.
    """
    y0 = np.asarray(y0, dtype=float).copy()
    if np.any(G @ y0 > h + 1e-9 * (1 + np.abs(h))):
        raise ValueError("hit_and_run: the starting point lies outside the polytope.")
    dim = y0.size
    T = np.eye(dim)
    if rounding is not False and rounding is not None:
        coords = range(dim) if rounding is True else rounding
        ext = [y0, *_extreme_points(G, h, coords)]
        X = np.asarray(ext) - np.mean(ext, axis=0)
        cov = _product(X.T, X) / max(len(ext) - 1, 1)
        cov += 1e-10 * max(1.0, float(np.trace(cov)) / dim) * np.eye(dim)
        T = _cholesky(cov)
    burn = 10 * thinning if burn_in is None else burn_in
    out = _chain(_product(G, T), h - _product(G, y0), np.zeros(dim), n * thinning, thinning, rng, burn)
    return y0 + _product(out, T.T)


def _cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of the positive definite ``A``, column by column in a fixed order
    (LAPACK's blocked factorisation rounds differently with its thread count)."""
    L = np.zeros_like(A)
    for j in range(A.shape[0]):
        L[j, j] = np.sqrt(A[j, j] - np.einsum("k,k->", L[j, :j], L[j, :j]))
        L[j + 1 :, j] = (A[j + 1 :, j] - np.einsum("ik,k->i", L[j + 1 :, :j], L[j, :j])) / L[j, j]
    return L


def _product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` summed in a fixed order (numpy's own loops, not BLAS): BLAS's order depends on its
    thread count, and the chain turns last-digit differences into different samples."""
    return np.einsum("ij,j->i" if B.ndim == 1 else "ij,jk->ik", A, B)


def _extreme_points(G: np.ndarray, h: np.ndarray, coords) -> list[np.ndarray]:
    """Minimisers and maximisers of each coordinate in ``coords`` over {G y <= h} (one HiGHS model,
    warm-started from the previous basis as only the objective changes)."""
    import highspy
    from scipy.sparse import csc_matrix

    dim = G.shape[1]
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = dim, G.shape[0]
    lp.col_cost_ = np.zeros(dim)
    lp.col_lower_ = np.full(dim, -highspy.kHighsInf)
    lp.col_upper_ = np.full(dim, highspy.kHighsInf)
    lp.row_lower_ = np.full(G.shape[0], -highspy.kHighsInf)
    lp.row_upper_ = np.asarray(h, dtype=float)
    A = csc_matrix(G)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.passModel(lp)
    out = []
    idx = np.arange(dim, dtype=np.int32)
    for i in coords:
        for sgn in (1.0, -1.0):
            c = np.zeros(dim)
            c[i] = sgn
            solver.changeColsCost(dim, idx, c)
            solver.run()
            if solver.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                out.append(np.asarray(solver.getSolution().col_value, dtype=float))
    return out


def _chain(G: np.ndarray, h: np.ndarray, y: np.ndarray, n_steps: int, thinning: int, rng: np.random.Generator, burn: int) -> np.ndarray:
    """Hit-and-run chain in {G y <= h}: every ``thinning``-th point after ``burn`` steps."""
    y = y.copy()
    out = np.empty((n_steps // thinning, y.size))
    slack = np.maximum(h - _product(G, y), 0.0)
    k = 0
    for step in range(burn + n_steps):
        d = rng.standard_normal(y.size)
        d /= np.linalg.norm(d)
        gd = _product(G, d)
        pos, neg = gd > 1e-14, gd < -1e-14
        tmax = np.min(slack[pos] / gd[pos]) if pos.any() else np.inf
        tmin = np.max(slack[neg] / gd[neg]) if neg.any() else -np.inf
        if not (np.isfinite(tmin) and np.isfinite(tmax)):
            raise ValueError("hit_and_run: the polytope is unbounded along a sampled direction.")
        if tmax > tmin:
            t = rng.uniform(tmin, tmax)
            y = y + t * d
            slack = np.maximum(slack - t * gd, 0.0)
        if step >= burn and (step - burn) % thinning == thinning - 1:
            out[k] = y
            k += 1
    return out


def _chebyshev_centre(G: np.ndarray, h: np.ndarray, what: str) -> tuple[np.ndarray, float]:
    """Centre and radius of the largest ball in {G y <= h} (HiGHS LP; radius capped at 1)."""
    from scipy.optimize import linprog

    norms = np.linalg.norm(G, axis=1)
    c = np.zeros(G.shape[1] + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=np.hstack([G, norms[:, None]]), b_ub=h, bounds=[(None, None)] * G.shape[1] + [(0.0, 1.0)], method="highs")
    if res.status != 0 or res.x[-1] <= 1e-9:
        raise NetworkError(
            f"The {what} polytope is empty or flat (LP status {res.status}: {res.message}; radius "
            f"{None if res.x is None else res.x[-1]!r})."
        )
    return res.x[:-1], float(res.x[-1])


def sample_reference_states(
    network: KineticNetwork,
    settings: SteadyStateSettings | None = None,
    n_states: int | None = None,
    seed: int = 0,
    thermodynamics: ThermodynamicData | None = None,
) -> ReferenceStates:
    """Sample ``n_states`` reference steady states consistent with the network (see the module docstring).

    Parameters
    ----------
    network : KineticNetwork
    settings : SteadyStateSettings, optional
    n_states : int, optional
        Overrides ``settings.n_states``.
    seed : int
        Seed of every draw.
    thermodynamics : ThermodynamicData, optional
        Delta_r G'0 estimates; ``None`` takes :func:`thermodynamic_data_for` (files of the
        settings, or the shipped iCH360 estimates for an iCH360 network).

    Returns
    -------
    ReferenceStates

    Raises
    ------
    NetworkError
        If a reference flux is zero, or no state satisfies the constraints.
    """
    settings = settings or SteadyStateSettings()
    n = int(n_states or settings.n_states)
    rng = np.random.default_rng(seed)
    if np.any(np.abs(network.fluxes) == 0):
        zero = [r for r, v in zip(network.reaction_ids, network.fluxes) if v == 0]
        raise NetworkError(f"Reactions {zero} carry no reference flux; their displacement direction is undefined.")
    if thermodynamics is None:
        thermodynamics = thermodynamic_data_for(network, settings)
    tfa = thermodynamics is not None and settings.method != "displacement"
    lo, hi = _bounds(network, settings, physiological=tfa)
    fixed = _fixed(network, settings)
    ln_fixed = np.log(fixed)
    sign = np.sign(network.fluxes)
    g = network.reaction_ids.index(network.growth_reaction)
    d_lo, d_hi = settings.displacement_range
    if not tfa:
        ln_disp = -sign * rng.uniform(d_lo, d_hi, size=(n, network.n_reactions))
        ln_x = rng.uniform(np.log(lo), np.log(hi), size=(n, network.n_metabolites))
        ln_disp[:, g] = GROWTH_LN_DISPLACEMENT
        ln_gamma = ln_mass_action_ratio(network, ln_x, ln_fixed)
        return ReferenceStates(np.exp(ln_x), fixed, ln_disp, ln_gamma - ln_disp, network.fluxes.copy(), None)
    ln_x, dg0, ln_disp, known = _sample_thermodynamic(network, thermodynamics, np.log(lo), np.log(hi), ln_fixed, settings, n, rng)
    # Reactions without an estimate (neither in the data nor a one-species transport) fall back to a
    # sampled displacement; their dG0 stays NaN. The growth reaction is irreversible.
    fallback = ~known
    ln_disp[:, fallback] = -sign[fallback] * rng.uniform(d_lo, d_hi, size=(n, int(fallback.sum())))
    ln_disp[:, g] = GROWTH_LN_DISPLACEMENT
    rt = GAS_CONSTANT * settings.temperature
    nu_sum = network.stoichiometry.sum(axis=0) + network.fixed_stoichiometry.sum(axis=0)
    ln_gamma = ln_mass_action_ratio(network, ln_x, ln_fixed)
    # ln Keq on the mM basis from the sampled Delta_r G'0: -Delta_r G'0/RT + sum(nu) ln 1000.
    ln_keq = ln_gamma - ln_disp
    ln_keq[:, known] = -dg0[:, known] / rt + nu_sum[known] * np.log(1000.0)
    fluxes = _sample_fluxes(network, settings, n, rng)
    return ReferenceStates(np.exp(ln_x), fixed, ln_disp, ln_keq, fluxes, dg0)


def _sample_fluxes(network: KineticNetwork, settings: SteadyStateSettings, n: int, rng: np.random.Generator) -> np.ndarray:
    """Flux profiles of the states: hit-and-run over {S v = 0 (with the balanced proton/water rows),
    v_substrate and v_product at the reference,
    v_growth >= flux_growth_fraction v_ref, |v_j| in [|v_ref_j|/f, f |v_ref_j|] and the model bounds}."""
    v0 = network.fluxes.astype(float)
    f = settings.flux_fold
    if f == 1.0:
        return np.broadcast_to(v0, (n, v0.size)).copy()
    from scipy.linalg import null_space

    ip, isub = (network.reaction_index(r) for r in (network.product_reaction, network.substrate_reaction))
    g = network.reaction_index(network.growth_reaction)
    E = np.zeros((2, v0.size))
    E[0, ip] = E[1, isub] = 1.0
    rows = [network.stoichiometry, E]
    if network.excluded_stoichiometry is not None and network.excluded_stoichiometry.size:
        # protons/water rows that the reference balances (cytosolic protons couple ATP synthase to respiration)
        Se = network.excluded_stoichiometry
        res = np.abs(Se @ v0)
        rows.append(Se[res <= 1e-6 * max(1.0, float(np.abs(Se).max() * np.abs(v0).max()))])
    N = null_space(np.vstack(rows))
    if N.shape[1] == 0:
        return np.broadcast_to(v0, (n, v0.size)).copy()
    a = np.abs(v0)
    lo = np.where(v0 > 0, a / f, -a * f)
    hi = np.where(v0 > 0, a * f, -a / f)
    lo[g] = max(lo[g], settings.flux_growth_fraction * v0[g])
    if network.flux_bounds is not None:
        lo = np.maximum(lo, network.flux_bounds[:, 0])
        hi = np.minimum(hi, network.flux_bounds[:, 1])
    # v = v0 + N w within [lo, hi]; scaled per reaction so every row has unit range.
    scale = hi - lo
    G = np.vstack([N / scale[:, None], -N / scale[:, None]])
    h = np.concatenate([(hi - v0) / scale, (v0 - lo) / scale])
    w0, _ = _chebyshev_centre(G, h, "flux")
    w = hit_and_run(G, h, w0, n, settings.hit_and_run_thinning, rng)
    return v0[None, :] + w @ N.T


def _moves_one_species(network: KineticNetwork, j: int) -> bool:
    """True when reaction j moves one species between compartments (same base ids on both sides)."""
    col = np.concatenate([network.stoichiometry[:, j], network.fixed_stoichiometry[:, j]])
    ids = network.species_ids
    sub = sorted(ids[i].rsplit("_", 1)[0] for i in np.flatnonzero(col < 0))
    prod = sorted(ids[i].rsplit("_", 1)[0] for i in np.flatnonzero(col > 0))
    comps = {ids[i].rsplit("_", 1)[-1] for i in np.flatnonzero(col)}
    return bool(sub) and sub == prod and len(comps) > 1


def _sample_thermodynamic(network, thermo, ln_lo, ln_hi, ln_fixed, settings, n, rng):
    """Hit-and-run over (ln x, z) with Delta_r G' sign constraints; returns ln_x, dG0, ln_disp, known mask."""
    rt = GAS_CONSTANT * settings.temperature
    index = {r: i for i, r in enumerate(thermo.reaction_ids)}
    var = np.sum(thermo.cov_sqrt**2, axis=1)
    n_rxn = network.n_reactions
    g = network.reaction_ids.index(network.growth_reaction)
    rows, mu, Q = [], [], []
    for j, r in enumerate(network.reaction_ids):
        if j == g:
            continue
        if r in index and var[index[r]] <= thermo.max_variance:
            rows.append(j)
            mu.append(thermo.mean[index[r]])
            Q.append(thermo.cov_sqrt[index[r]])
        elif _moves_one_species(network, j):
            # one species moved between compartments: Delta_r G'0 = 0
            rows.append(j)
            mu.append(0.0)
            Q.append(np.zeros(thermo.cov_sqrt.shape[1]))
    known = np.zeros(n_rxn, dtype=bool)
    known[rows] = True
    mu, Q = np.asarray(mu, dtype=float), np.asarray(Q, dtype=float).reshape(len(rows), -1)
    used = np.flatnonzero(np.abs(Q).sum(axis=0) > 0)
    Q = Q[:, used]
    n_met, n_z = network.n_metabolites, Q.shape[1]
    # Delta_r G'0 is in the 1 M standard state; concentrations here are mM: ln(x[M]) = ln(x[mM]) - ln 1000.
    Sb = network.stoichiometry[:, rows].T
    Sf = network.fixed_stoichiometry[:, rows].T
    conc_shift = (Sb.sum(axis=1) + Sf.sum(axis=1)) * np.log(1e-3)
    const = mu / rt + Sf @ ln_fixed + conc_shift
    s = np.sign(network.fluxes[rows])
    # s * (Sb lnx + Q z / rt + const) <= -min_df, plus the boxes of ln x and z
    A = np.hstack([s[:, None] * Sb, s[:, None] * Q / rt])
    b = -settings.min_driving_force - s * const
    lo = np.concatenate([ln_lo, np.full(n_z, -settings.dg0_z_bound)])
    hi = np.concatenate([ln_hi, np.full(n_z, settings.dg0_z_bound)])
    eye = np.eye(A.shape[1])
    G = np.vstack([A, eye, -eye])
    h = np.concatenate([b, hi, -lo])
    try:
        y0, _ = _chebyshev_centre(G, h, "thermodynamic")
    except NetworkError as err:
        raise NetworkError(
            f"{err} No concentrations within the bounds and Delta_r G'0 within its uncertainty make every "
            "reaction's Delta_r G' agree with its flux direction. Widen steady_state.concentration_bounds or "
            "dg0_z_bound, lower min_driving_force, or drop the conflicting reactions."
        ) from None
    out = hit_and_run(G, h, y0, n, settings.hit_and_run_thinning, rng, rounding=range(n_met))
    ln_x = out[:, :n_met]
    z = out[:, n_met:]
    dg0 = np.full((n, n_rxn), np.nan)
    dg0[:, rows] = mu + z @ Q.T
    ln_disp = np.zeros((n, n_rxn))
    ln_disp[:, rows] = dg0[:, rows] / rt + ln_x @ Sb.T + Sf @ ln_fixed + conc_shift
    return ln_x, dg0, ln_disp, known
