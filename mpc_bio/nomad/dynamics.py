"""Intracellular dynamics of ensemble models: relaxation and nonlinear steady states.

All CasADi functions are built once per network (cached) with every model parameter as an
input, then called per model. States are scaled, z = x / x_ref, so every state is O(1).

- Intracellular ODE: dx/dt = S v(x) / V_cell (mM/h), boundary metabolites fixed.
- Steady state: Newton on ln x_ind with the moiety totals of the reference state kept
  (x = x_ref + L (x_ind - x_ind,ref)).

The reactor around the cells (medium substrate, biomass, product, feed) is
:mod:`mpc_bio.nomad.reactor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import casadi as ca
import numpy as np

from mpc_bio.interrupts import check_interrupt
from mpc_bio.nomad.conservation import analyse_conservation
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import rate_expressions
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.reactor import model_parameters

__all__ = ["SteadyStateSolution", "solve_steady_state", "simulate_relaxation"]

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


def _params(net: KineticNetwork):
    x_ref = ca.SX.sym("x_ref", net.n_metabolites)
    xf = ca.SX.sym("x_fixed", net.n_fixed)
    K = ca.SX.sym("K", net.n_slots)
    lk = ca.SX.sym("ln_keq", net.n_reactions)
    vm = ca.SX.sym("vmax", net.n_reactions)
    return x_ref, xf, K, lk, vm


@lru_cache(maxsize=8)
def _functions(network_json: str, cell_volume: float):
    net = KineticNetwork.from_dict(json.loads(network_json))
    cons = analyse_conservation(net)
    S = ca.DM(net.stoichiometry)
    x_ref, xf, K, lk, vm = _params(net)
    T = ca.SX.sym("T")
    p = ca.vertcat(T, x_ref, xf, K, lk, vm)
    # intracellular relaxation, scaled time s = t / T
    z = ca.SX.sym("z", net.n_metabolites)
    v = rate_expressions(net, x_ref * z, xf, K, lk, vm)
    ode = T * (S @ v) / cell_volume / x_ref
    relax = ca.integrator("relax", "cvodes", {"x": z, "p": p, "ode": ode}, 0.0, [1.0], _INTEGRATOR_OPTS)
    # steady state: unknowns y = ln x_ind
    y = ca.SX.sym("y", cons.rank)
    ind = cons.independent
    x_of_y = x_ref + ca.DM(cons.link) @ (ca.exp(y) - x_ref[list(ind)])
    vss = rate_expressions(net, x_of_y, xf, K, lk, vm)
    resid = ca.DM(cons.reduced_stoichiometry) @ vss
    res_fun = ca.Function("ss_residual", [y, p], [resid])
    # NaN evaluations far from the reference are expected for bad strains: reported through
    # SteadyStateSolution.converged, not printed
    root = ca.rootfinder("ss", "newton", res_fun, {"abstol": 1e-11, "max_iter": 60, "error_on_fail": False, "show_eval_warnings": False})
    xv = ca.Function("x_and_v", [y, p], [x_of_y, vss])
    return relax, root, xv, res_fun, cons


def _funcs(ensemble: KineticEnsemble):
    return _functions(json.dumps(ensemble.network.to_dict(), sort_keys=True), float(ensemble.cell_volume))


def _param_vector(ensemble: KineticEnsemble, i: int, duration: float, vmax_fold=None) -> np.ndarray:
    return np.concatenate([[duration], model_parameters(ensemble, i, vmax_fold)])


def solve_steady_state(ensemble: KineticEnsemble, i: int, vmax_fold=None, x0=None, relax_hours: float | None = None) -> SteadyStateSolution:
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
    relax, root, xv, res_fun, cons = _funcs(ensemble)
    x_ref = ensemble.concentrations[i]
    p = _param_vector(ensemble, i, relax_hours or 1.0, vmax_fold)
    z0 = np.ones(ensemble.network.n_metabolites) if x0 is None else np.asarray(x0) / x_ref
    msg = ""
    if relax_hours:
        try:
            z0 = np.asarray(relax(x0=z0, p=p)["xf"])[:, -1]
        except RuntimeError as exc:
            check_interrupt()  # CVODES turns Ctrl-C / SIGTERM into this error: stop, not a failed model
            msg = f"relaxation failed: {exc}"
    xind = (x_ref * z0)[cons.independent]
    if np.any(xind <= 0):
        return SteadyStateSolution(x_ref * z0, np.full(ensemble.network.n_reactions, np.nan), False, np.inf, "non-positive initial guess")
    y = np.asarray(root(np.log(xind), p)).ravel()
    x, v = (np.asarray(a).ravel() for a in xv(y, p))
    r = float(np.abs(np.asarray(res_fun(y, p))).max())
    ok = bool(np.isfinite(r) and r < 1e-8 * max(1.0, np.abs(v).max()) and np.all(x > 0))
    stats = root.stats()
    return SteadyStateSolution(x, v, ok, r, msg or str(stats.get("return_status", "")))


def simulate_relaxation(ensemble: KineticEnsemble, i: int, x0: np.ndarray, duration: float, vmax_fold=None) -> tuple[np.ndarray, bool, str]:
    """Integrate model ``i`` from ``x0`` (mM) for ``duration`` h; returns (x_end, success, message)."""
    relax = _funcs(ensemble)[0]
    x_ref = ensemble.concentrations[i]
    p = _param_vector(ensemble, i, duration, vmax_fold)
    try:
        zT = np.asarray(relax(x0=np.asarray(x0) / x_ref, p=p)["xf"])[:, -1]
    except RuntimeError as exc:
        check_interrupt()  # CVODES turns Ctrl-C / SIGTERM into this error: stop, not a failed model
        return np.full_like(x_ref, np.nan), False, str(exc).splitlines()[0][:200]
    ok = bool(np.all(np.isfinite(zT)))
    return zT * x_ref, ok, "" if ok else "non-finite state"
