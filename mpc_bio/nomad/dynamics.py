"""Nonlinear dynamics of ensemble models: steady states, perturbation responses, batch reactor.

All CasADi functions are built once per network (cached) with every model parameter as an
input, then called per model. States are scaled, z = x / x_ref, so every state is O(1).

- Intracellular ODE: dx/dt = S v(x) / V_cell (mM/h), boundary metabolites fixed.
- Batch reactor: the intracellular ODE plus biomass X (gDW/L), the substrate's boundary
  metabolite s (mM, d s/dt = S_fixed[s] v X) and the product titer P (mM, dP/dt = v_product X);
  d X/dt = v_growth X. Other boundary metabolites stay fixed (large medium, early batch).
- Steady state: Newton on ln x_ind with the moiety totals of the reference state kept
  (x = x_ref + L (x_ind - x_ind,ref)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import casadi as ca
import numpy as np

from mpc_bio.nomad.conservation import analyse_conservation
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import rate_expressions
from mpc_bio.nomad.network import KineticNetwork

__all__ = [
    "SteadyStateSolution",
    "BatchSimulation",
    "solve_steady_state",
    "simulate_relaxation",
    "simulate_batch",
    "substrate_species",
]

_INTEGRATOR_OPTS = {"abstol": 1e-9, "reltol": 1e-7, "max_num_steps": 50000, "disable_internal_warnings": True}


@dataclass(frozen=True, eq=False)
class SteadyStateSolution:
    """A nonlinear steady state of one model.

    Attributes
    ----------
    concentrations : ndarray (n_met,)
        mM.
    fluxes : ndarray (n_rxn,)
        mmol/gDW/h.
    converged : bool
    residual : float
        max |N_r v| at the solution (mmol/gDW/h).
    message : str
    """

    concentrations: np.ndarray
    fluxes: np.ndarray
    converged: bool
    residual: float
    message: str = ""


@dataclass(frozen=True, eq=False)
class BatchSimulation:
    """A batch-reactor time course of one model.

    Attributes
    ----------
    times : ndarray (n_t,)
        h.
    biomass : ndarray (n_t,)
        gDW/L.
    substrate : ndarray (n_t,)
        Substrate (boundary metabolite of the uptake reaction) in the medium, mM.
    product : ndarray (n_t,)
        Product titer formed by the product reaction, mM.
    concentrations : ndarray (n_t, n_met)
        Intracellular concentrations, mM.
    growth_rate : ndarray (n_t,)
        Growth flux, 1/h.
    success : bool
    message : str
    """

    times: np.ndarray
    biomass: np.ndarray
    substrate: np.ndarray
    product: np.ndarray
    concentrations: np.ndarray
    growth_rate: np.ndarray
    success: bool
    message: str = ""


def substrate_species(network: KineticNetwork) -> int:
    """Index (into ``fixed_ids``) of the boundary metabolite consumed by the substrate reaction."""
    j = network.reaction_index(network.substrate_reaction)
    col = network.fixed_stoichiometry[:, j] * np.sign(network.fluxes[j])
    cand = np.flatnonzero(col < 0)
    if cand.size == 0:
        raise ValueError(
            f"The substrate reaction {network.substrate_reaction!r} consumes no boundary metabolite; "
            f"a batch reactor needs one (e.g. glc__D_e)."
        )
    return int(cand[0])


def _params(net: KineticNetwork):
    x_ref = ca.SX.sym("x_ref", net.n_metabolites)
    xf = ca.SX.sym("x_fixed", net.n_fixed)
    K = ca.SX.sym("K", net.n_slots)
    lk = ca.SX.sym("ln_keq", net.n_reactions)
    vm = ca.SX.sym("vmax", net.n_reactions)
    return x_ref, xf, K, lk, vm


@lru_cache(maxsize=8)
def _functions(network_json: str, cell_volume: float, n_points: int):
    import json

    net = KineticNetwork.from_dict(json.loads(network_json))
    cons = analyse_conservation(net)
    S = ca.DM(net.stoichiometry)
    x_ref, xf, K, lk, vm = _params(net)
    T = ca.SX.sym("T")
    p = ca.vertcat(T, x_ref, xf, K, lk, vm)
    grid = list(np.linspace(0.0, 1.0, n_points)[1:])
    # intracellular relaxation, scaled time s = t / T
    z = ca.SX.sym("z", net.n_metabolites)
    v = rate_expressions(net, x_ref * z, xf, K, lk, vm)
    ode = T * (S @ v) / cell_volume / x_ref
    relax = ca.integrator("relax", "cvodes", {"x": z, "p": p, "ode": ode}, 0.0, grid, _INTEGRATOR_OPTS)
    # batch reactor; scaled states: s~ = s / s0, X~ = X / X0, P~ = P / X0 (all O(1))
    s_idx = substrate_species(net)
    g = net.reaction_index(net.growth_reaction)
    pr = net.reaction_index(net.product_reaction)
    zb = ca.SX.sym("zb", net.n_metabolites)
    s_t, X_t, P_t = ca.SX.sym("s"), ca.SX.sym("X"), ca.SX.sym("P")
    s0, X0 = ca.SX.sym("s0"), ca.SX.sym("X0")
    s_med = s0 * s_t
    xf_b = ca.vertcat(*[s_med if k == s_idx else xf[k] for k in range(net.n_fixed)]) if net.n_fixed else xf
    vb = rate_expressions(net, x_ref * zb, xf_b, K, lk, vm)
    Sf_s = ca.DM(net.fixed_stoichiometry[s_idx]).T
    rhs = ca.vertcat(
        T * (S @ vb) / cell_volume / x_ref,
        T * (Sf_s @ vb) * X0 * X_t / s0,
        T * vb[g] * X_t,
        T * vb[pr] * X_t,
    )
    state = ca.vertcat(zb, s_t, X_t, P_t)
    pb = ca.vertcat(p, s0, X0)
    batch = ca.integrator("batch", "cvodes", {"x": state, "p": pb, "ode": rhs}, 0.0, grid, _INTEGRATOR_OPTS)
    growth = ca.Function("growth", [zb, s_t, pb], [vb[g]])
    # steady state: unknowns y = ln x_ind
    y = ca.SX.sym("y", cons.rank)
    ind = cons.independent
    x_of_y = x_ref + ca.DM(cons.link) @ (ca.exp(y) - x_ref[list(ind)])
    vss = rate_expressions(net, x_of_y, xf, K, lk, vm)
    resid = ca.DM(cons.reduced_stoichiometry) @ vss
    res_fun = ca.Function("ss_residual", [y, p], [resid])
    # NaN evaluations far from the reference are expected for bad strains: reported through
    # SteadyStateSolution.converged, not printed
    root = ca.rootfinder("ss", "newton", res_fun, {"abstol": 1e-11, "max_iter": 60, "error_on_fail": False,
                                                    "show_eval_warnings": False})
    xv = ca.Function("x_and_v", [y, p], [x_of_y, vss])
    return relax, batch, growth, root, xv, res_fun, cons


def _funcs(ensemble: KineticEnsemble, n_points: int = 2):
    import json

    return _functions(json.dumps(ensemble.network.to_dict(), sort_keys=True), float(ensemble.cell_volume),
                      int(n_points))


def _param_vector(ensemble: KineticEnsemble, i: int, duration: float, vmax_fold=None,
                  x_fixed=None) -> np.ndarray:
    x, xf, K, lk, vm = (np.asarray(a)[0] if np.ndim(a) == 2 else np.asarray(a)
                        for a in ensemble.parameters([i]))
    if vmax_fold is not None:
        vm = vm * np.asarray(vmax_fold, dtype=float)
    if x_fixed is not None:
        xf = np.asarray(x_fixed, dtype=float)
    return np.concatenate([[duration], x, xf, K, lk, vm])


def solve_steady_state(ensemble: KineticEnsemble, i: int, vmax_fold=None, x0=None,
                       relax_hours: float | None = None) -> SteadyStateSolution:
    """Nonlinear steady state of model ``i`` with Vmax multiplied by ``vmax_fold`` (moieties kept).

    Parameters
    ----------
    ensemble : KineticEnsemble
    i : int
        Model index.
    vmax_fold : array (n_rxn,), optional
        Multiplies Vmax (enzyme activity fold changes).
    x0 : array (n_met,), optional
        Initial guess (mM); default the reference concentrations.
    relax_hours : float, optional
        Integrate the ODE this long (h) first, for large perturbations where Newton from the
        reference does not converge.
    """
    relax, _, _, root, xv, res_fun, cons = _funcs(ensemble)
    x_ref = ensemble.concentrations[i]
    p = _param_vector(ensemble, i, relax_hours or 1.0, vmax_fold)
    z0 = np.ones(ensemble.network.n_metabolites) if x0 is None else np.asarray(x0) / x_ref
    msg = ""
    if relax_hours:
        try:
            z0 = np.asarray(relax(x0=z0, p=p)["xf"])[:, -1]
        except RuntimeError as exc:
            msg = f"relaxation failed: {exc}"
    xind = (x_ref * z0)[cons.independent]
    if np.any(xind <= 0):
        return SteadyStateSolution(x_ref * z0, np.full(ensemble.network.n_reactions, np.nan), False, np.inf,
                                   "non-positive initial guess")
    y = np.asarray(root(np.log(xind), p)).ravel()
    x, v = (np.asarray(a).ravel() for a in xv(y, p))
    r = float(np.abs(np.asarray(res_fun(y, p))).max())
    ok = bool(np.isfinite(r) and r < 1e-8 * max(1.0, np.abs(v).max()) and np.all(x > 0))
    stats = root.stats()
    return SteadyStateSolution(x, v, ok, r, msg or str(stats.get("return_status", "")))


def simulate_relaxation(ensemble: KineticEnsemble, i: int, x0: np.ndarray, duration: float,
                        vmax_fold=None) -> tuple[np.ndarray, bool, str]:
    """Integrate model ``i`` from ``x0`` (mM) for ``duration`` h; returns (x_end, success, message)."""
    relax = _funcs(ensemble)[0]
    x_ref = ensemble.concentrations[i]
    p = _param_vector(ensemble, i, duration, vmax_fold)
    try:
        zT = np.asarray(relax(x0=np.asarray(x0) / x_ref, p=p)["xf"])[:, -1]
    except RuntimeError as exc:
        return np.full_like(x_ref, np.nan), False, str(exc).splitlines()[0][:200]
    ok = bool(np.all(np.isfinite(zT)))
    return zT * x_ref, ok, "" if ok else "non-finite state"


def simulate_batch(ensemble: KineticEnsemble, i: int, duration: float, initial_biomass: float = 0.05,
                   vmax_fold=None, initial_substrate: float | None = None, n_points: int = 25,
                   x0: np.ndarray | None = None) -> BatchSimulation:
    """Batch reactor with model ``i`` (Vmax multiplied by ``vmax_fold``).

    Parameters
    ----------
    duration : float
        h.
    initial_biomass : float
        gDW/L.
    initial_substrate : float, optional
        mM; default the reference concentration of the substrate's boundary metabolite.
    n_points : int
        Output times, evenly spaced over [0, duration].
    x0 : array, optional
        Initial intracellular concentrations (mM); default the reference state.
    """
    _, batch, growth, *_ = _funcs(ensemble, n_points)
    net = ensemble.network
    s_idx = substrate_species(net)
    x_ref = ensemble.concentrations[i]
    s0 = float(ensemble.fixed_concentrations[s_idx] if initial_substrate is None else initial_substrate)
    if s0 <= 0 or initial_biomass <= 0:
        raise ValueError(
            f"simulate_batch needs a positive initial substrate and biomass; "
            f"got {s0!r} mM and {initial_biomass!r} gDW/L."
        )
    p = np.concatenate([_param_vector(ensemble, i, duration, vmax_fold), [s0, initial_biomass]])
    z0 = np.ones(net.n_metabolites) if x0 is None else np.asarray(x0) / x_ref
    state0 = np.concatenate([z0, [1.0, 1.0, 0.0]])
    times = np.linspace(0.0, duration, n_points)
    try:
        traj = np.hstack([state0[:, None], np.asarray(batch(x0=state0, p=p)["xf"])])
        ok, msg = bool(np.all(np.isfinite(traj))), ""
    except RuntimeError as exc:
        traj = np.full((state0.size, n_points), np.nan)
        ok, msg = False, str(exc).splitlines()[0][:200]
    n = net.n_metabolites
    mu = np.array([float(growth(traj[:n, k], traj[n, k], p)) if ok else np.nan for k in range(n_points)])
    return BatchSimulation(times, traj[n + 1] * initial_biomass, traj[n] * s0, traj[n + 2] * initial_biomass,
                           (traj[:n] * x_ref[:, None]).T, mu, ok, msg)
