"""Rate laws of the kinetic network, written symbolically in CasADi.

Per reaction j with Vmax_j, ln Keq_j and saturation constants K (one per substrate/product slot):

- ``convenience`` (reversible convenience kinetics in the factorised "modular" form of
  Liebermeister et al. 2010 / Noor et al. 2013, unit exponents in the saturation term):
  v = Vmax (1 - Gamma/Keq) prod_s(x_s/K_s) / (prod_s(1 + x_s/K_s) + prod_p(1 + x_p/K_p) - 1)
- ``mass_action`` (transport): v = Vmax (1 - Gamma/Keq) prod_s x_s^|nu_s|
- ``growth`` (irreversible lumped growth): v = Vmax prod_s x_s/(K_s + x_s)
- allosteric regulation (:mod:`mpc_bio.nomad.regulation`), one saturation constant per modifier:
  activation multiplies the rate by x/(Ka + x) and noncompetitive inhibition by Ki/(Ki + x) (any
  rate law); competitive inhibition adds x/Ki to the convenience denominator D and uncompetitive
  inhibition multiplies its bound-state terms, D -> 1 + (D - 1)(1 + x/Ki) (convenience rate law
  only); mixed inhibition is one competitive and one uncompetitive modifier of the same species.

Gamma = prod_i x_i^nu_i is the mass-action ratio over every non-excluded species (protons and water
excluded). The thermodynamic factor makes the sign of v follow Delta_r G' exactly (Haldane
relation built in). The CasADi functions are built once per network and take all parameters as
inputs, so one graph serves every model of an ensemble (``Function.map`` over models).
Units: x in mM, v and Vmax in mmol/gDW/h.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import casadi as ca
import numpy as np

from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.regulation import ROLE_ACTIVATOR, ROLE_COMPETITIVE, ROLE_NONCOMPETITIVE, ROLE_UNCOMPETITIVE

__all__ = ["KineticFunctions", "kinetic_functions", "evaluate_rates", "evaluate_rate_jacobian", "rate_expressions"]


@dataclass(frozen=True, eq=False)
class KineticFunctions:
    """CasADi functions of one network (inputs: x, x_fixed, K, ln_keq, vmax).

    Attributes
    ----------
    rates : casadi.Function
        (x[n_met], x_fixed[n_fixed], K[n_slots], ln_keq[n_rxn], vmax[n_rxn]) -> v[n_rxn] (mmol/gDW/h).
    rate_jacobian : casadi.Function
        Same inputs -> dv/dx [n_rxn x n_met] (mmol/gDW/h/mM), exact, dense.
    jacobian_nonzeros : casadi.Function
        Same inputs -> the structural nonzeros of dv/dx as a column, at ``jacobian_rows`` and
        ``jacobian_cols`` (the fast path over many models).
    """

    network_digest: str
    rates: ca.Function
    rate_jacobian: ca.Function
    jacobian_nonzeros: ca.Function
    jacobian_rows: np.ndarray
    jacobian_cols: np.ndarray


def rate_expressions(network: KineticNetwork, x, xf, K, ln_keq, vmax):
    """Symbolic rate vector (casadi SX/MX) for the given symbolic or numeric inputs."""
    species = ca.vertcat(x, xf)
    S_all = np.vstack([network.stoichiometry, network.fixed_stoichiometry])
    slots_by_rxn: dict[int, list[tuple[int, int, int]]] = {}
    for k, (j, sp, role) in enumerate(zip(network.slot_reaction, network.slot_species, network.slot_role)):
        slots_by_rxn.setdefault(int(j), []).append((k, int(sp), int(role)))
    out = []
    for j, law in enumerate(network.rate_laws):
        slots = slots_by_rxn.get(j, [])
        out.append(
            _regulation(slots, species, K)
            * _rate(
                law,
                j,
                S_all[:, j],
                [s for s in slots if abs(s[2]) == 1],
                species,
                K,
                ln_keq,
                vmax,
                [s for s in slots if s[2] in (ROLE_COMPETITIVE, ROLE_UNCOMPETITIVE)],
            )
        )
    return ca.vertcat(*out)


def _regulation(slots, species, K):
    """Product of the multiplicative modifiers x/(Ka + x) (activation) and Ki/(Ki + x) (noncompetitive)."""
    factor = 1
    for k, sp, role in slots:
        if role == ROLE_ACTIVATOR:
            factor = factor * species[sp] / (K[k] + species[sp])
        elif role == ROLE_NONCOMPETITIVE:
            factor = factor * K[k] / (K[k] + species[sp])
    return factor


def _rate(law, j, col, slots, species, K, ln_keq, vmax, denominator_slots=()):
    """Rate of reaction j without multiplicative regulation (see the module docstring)."""
    nz = np.flatnonzero(col)
    if law == "growth":
        sat = 1
        for k, sp, role in slots:
            sat = sat * species[sp] / (K[k] + species[sp])
        return vmax[j] * sat
    prod_num, sub_num = 1, 1
    for i in nz:
        nu = float(col[i])
        p = species[i] ** abs(nu) if abs(nu) != 1.0 else species[i]
        if nu > 0:
            prod_num = prod_num * p
        else:
            sub_num = sub_num * p
    # Gamma/Keq written with products/substrates, not logs, so it stays finite if x touches 0.
    f_t = 1 - ca.exp(-ln_keq[j]) * prod_num / sub_num
    if law == "mass_action":
        return vmax[j] * f_t * sub_num
    num, dsub, dprod = 1, 1, 1
    for k, sp, role in slots:
        ratio = species[sp] / K[k]
        if role > 0:
            num = num * ratio
            dsub = dsub * (1 + ratio)
        else:
            dprod = dprod * (1 + ratio)
    free, bound = 1, dsub + dprod - 2
    for k, sp, role in denominator_slots:
        if role == ROLE_COMPETITIVE:
            free = free + species[sp] / K[k]
        else:
            bound = bound * (1 + species[sp] / K[k])
    return vmax[j] * f_t * num / (free + bound)


@lru_cache(maxsize=8)
def _build(digest: str, network_json: str) -> KineticFunctions:
    import json

    network = KineticNetwork.from_dict(json.loads(network_json))
    x = ca.SX.sym("x", network.n_metabolites)
    xf = ca.SX.sym("x_fixed", network.n_fixed)
    K = ca.SX.sym("K", network.n_slots)
    lk = ca.SX.sym("ln_keq", network.n_reactions)
    vm = ca.SX.sym("vmax", network.n_reactions)
    v = rate_expressions(network, x, xf, K, lk, vm)
    names = ["x", "x_fixed", "K", "ln_keq", "vmax"]
    rates = ca.Function("rates", [x, xf, K, lk, vm], [v], names, ["v"])
    J = ca.jacobian(v, x)
    jac = ca.Function("rate_jacobian", [x, xf, K, lk, vm], [ca.densify(J)], names, ["dv_dx"])
    rows, cols = J.sparsity().get_triplet()
    jnz = ca.Function("jacobian_nonzeros", [x, xf, K, lk, vm], [ca.vertcat(*J.nonzeros())], names, ["nz"])
    return KineticFunctions(digest, rates, jac, jnz, np.asarray(rows, dtype=int), np.asarray(cols, dtype=int))


def kinetic_functions(network: KineticNetwork) -> KineticFunctions:
    """CasADi rate and Jacobian functions of ``network`` (built once, cached by network digest)."""
    import json

    return _build(network.digest(), json.dumps(network.to_dict(), sort_keys=True))


def _mapped(fun: ca.Function, args, n_out_rows: int, n_out_cols: int) -> np.ndarray:
    """Evaluate ``fun`` over the rows of every array in ``args`` (each (N, k) or (k,) shared)."""
    N = max(a.shape[0] for a in args if a.ndim == 2)
    cols = [np.ascontiguousarray(a.T) if a.ndim == 2 else np.asarray(a)[:, None] for a in args]
    fmap = fun.map(N, "serial") if N > 1 else fun
    res = np.asarray(fmap(*cols))
    # res: (n_out_rows, n_out_cols * N), blocks per model
    return res.reshape(n_out_rows, N, n_out_cols).transpose(1, 0, 2)


def evaluate_rates(network: KineticNetwork, x, x_fixed, K, ln_keq, vmax) -> np.ndarray:
    """Rates (N, n_rxn) in mmol/gDW/h, rows = models (1-D inputs are shared); (n_rxn,) if all are 1-D."""
    fns = kinetic_functions(network)
    args = [np.atleast_1d(np.asarray(a, dtype=float)) for a in (x, x_fixed, K, ln_keq, vmax)]
    if all(a.ndim == 1 for a in args):
        return np.asarray(fns.rates(*args)).ravel()
    return _mapped(fns.rates, args, network.n_reactions, 1)[:, :, 0]


def evaluate_rate_jacobian(network: KineticNetwork, x, x_fixed, K, ln_keq, vmax) -> np.ndarray:
    """dv/dx (N, n_rxn, n_met) in mmol/gDW/h/mM, exact (CasADi AD); (n_rxn, n_met) if all inputs are 1-D."""
    fns = kinetic_functions(network)
    args = [np.atleast_1d(np.asarray(a, dtype=float)) for a in (x, x_fixed, K, ln_keq, vmax)]
    if all(a.ndim == 1 for a in args):
        return np.asarray(fns.rate_jacobian(*args))
    nz = _mapped(fns.jacobian_nonzeros, args, fns.jacobian_rows.size, 1)[:, :, 0]
    out = np.zeros((nz.shape[0], network.n_reactions, network.n_metabolites))
    out[:, fns.jacobian_rows, fns.jacobian_cols] = nz
    return out
