"""The kinetic fed-batch reactor of the NOMAD stage as a control model (CasADi ``rhs(x, u, p)``).

:mod:`mpc_bio.nomad.reactor` defines the reactor: the cell's rates in its medium
(:func:`~mpc_bio.nomad.reactor.medium_rates`) and the balances in concentrations that
:func:`~mpc_bio.nomad.reactor.simulate_reactor` integrates. The control layer
(:mod:`mpc_bio.control`) works with amounts (L, mmol, gDW) and a feed input F (L/h), so the
balances are written here in amounts around the same rates, for one or several ensemble members
that share one reactor volume and one feed:

    dz_m/dt   = S v_m(x_ref z_m, s_m) / V_cell / x_ref        intracellular, z = x / x_ref (-)
    dn_s,m/dt = (S_fixed[s] . v_m) n_X,m + F s_in               substrate amount (mmol), s_m = n_s,m / V
    dn_X,m/dt = v_growth,m n_X,m                                biomass amount (gDW)
    dn_P,m/dt = v_product,m n_X,m                               product amount (mmol)
    dV/dt     = F                                               volume (L)

Dividing by V and using dV/dt = F gives back the concentration form of the reactor module
(the dilution terms -F/V c), which is what the tests check. Member m's Vmax are multiplied by
the design's fold changes in that member, so a stacked model is "one strain in M ensemble
members under one feed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import casadi as ca
import numpy as np

from mpc_bio.control import ControlModel, ReactorRoles
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.reactor import medium_rates, model_parameters, substrate_species

__all__ = ["KineticControlModel", "kinetic_control_model"]


@dataclass(frozen=True, eq=False)
class KineticControlModel:
    """One strain in ``n_members`` kinetic models under one feed, as a :class:`ControlModel`.

    Attributes
    ----------
    model : ControlModel
        States per member ``z_<met>`` (-), ``n_glc`` (mmol), ``n_X`` (gDW), ``n_P`` (mmol)
        (suffixed ``_m<k>`` when there are several members), then the shared ``V`` (L); input
        ``F`` (L/h); roles point to member 0.
    members : tuple of int
        Ensemble indices of the members.
    glucose_index, biomass_index, product_index : tuple of int
        State index of each member's substrate, biomass and product amount.
    volume_index : int
    x0 : ndarray (n_x,)
        Initial state: intracellular at the reference (z = 1), the given initial concentrations
        times the initial volume.
    feed_glucose : float
        Substrate concentration of the feed (mM), a model parameter.
    """

    model: ControlModel
    members: tuple[int, ...]
    glucose_index: tuple[int, ...]
    biomass_index: tuple[int, ...]
    product_index: tuple[int, ...]
    volume_index: int
    x0: np.ndarray
    feed_glucose: float

    @property
    def n_members(self) -> int:
        return len(self.members)


def kinetic_control_model(
    ensemble: KineticEnsemble,
    members: Sequence[int],
    *,
    vmax_folds: np.ndarray | None = None,
    feed_glucose: float = 500.0,
    biomass0: float = 0.05,
    glucose0: float | None = None,
    volume0: float = 1.0,
) -> KineticControlModel:
    """Build the stacked kinetic fed-batch model of one strain.

    Parameters
    ----------
    ensemble : KineticEnsemble
    members : sequence of int
        Ensemble indices (>= 1 member).
    vmax_folds : ndarray (n_members, n_rxn), optional
        Vmax multipliers of the strain in each member (None: reference strain).
    feed_glucose : float
        Feed substrate concentration (mM).
    biomass0 : float
        Inoculum (gDW/L).
    glucose0 : float, optional
        Initial substrate (mM); None uses the reference boundary concentration, as
        :func:`~mpc_bio.nomad.reactor.simulate_reactor` does.
    volume0 : float
        Initial volume (L).

    Returns
    -------
    KineticControlModel
    """
    members = tuple(int(m) for m in members)
    if not members:
        raise ValueError("kinetic_control_model needs at least one ensemble member. Got none.")
    net = ensemble.network
    nm, nr, n = len(members), net.n_reactions, net.n_metabolites
    if vmax_folds is not None:
        vmax_folds = np.asarray(vmax_folds, dtype=float)
        if vmax_folds.shape != (nm, nr) or not np.all(np.isfinite(vmax_folds)) or np.any(vmax_folds <= 0):
            raise ValueError(
                f"The 'vmax_folds' parameter must be a positive finite array of shape {(nm, nr)}. Got shape {vmax_folds.shape}."
            )
    if feed_glucose < 0 or biomass0 <= 0 or volume0 <= 0:
        raise ValueError(f"feed_glucose must be >= 0, biomass0 and volume0 > 0. Got {feed_glucose!r}, {biomass0!r}, {volume0!r}.")
    s_idx = substrate_species(net)
    g = net.reaction_index(net.growth_reaction)
    pr = net.reaction_index(net.product_reaction)
    S = ca.DM(net.stoichiometry)
    s_row = ca.DM(net.fixed_stoichiometry[s_idx]).T
    n_par = n + net.n_fixed + net.n_slots + 2 * nr
    x_all = ca.SX.sym("x", nm * (n + 3) + 1)
    u = ca.SX.sym("F")
    p_all = ca.SX.sym("p", 1 + nm * n_par)
    V = x_all[-1]
    s_in = p_all[0]
    rhs, names, pnames, growth = [], [], ["s_in"], []
    gi, bi, pi = [], [], []
    pvals = [float(feed_glucose)]
    for k, m in enumerate(members):
        suf = "" if nm == 1 else f"_m{k}"
        off = k * (n + 3)
        z = x_all[off : off + n]
        n_s, n_X = x_all[off + n], x_all[off + n + 1]
        v, x_ref = medium_rates(net, z, n_s / V, p_all[1 + k * n_par : 1 + (k + 1) * n_par], s_idx)
        rhs += [(S @ v) / float(ensemble.cell_volume) / x_ref, (s_row @ v) * n_X + u * s_in, v[g] * n_X, v[pr] * n_X]
        growth.append(v[g])
        names += [f"z_{mid}{suf}" for mid in net.metabolite_ids] + [f"n_glc{suf}", f"n_X{suf}", f"n_P{suf}"]
        gi.append(off + n)
        bi.append(off + n + 1)
        pi.append(off + n + 2)
        pnames += [f"p{j}{suf}" for j in range(n_par)]
        pvals.append(model_parameters(ensemble, m, None if vmax_folds is None else vmax_folds[k]))
    rhs.append(u)
    names.append("V")
    f = ca.Function("kinetic_rhs", [x_all, u, p_all], [ca.vertcat(*rhs)], ["x", "u", "p"], ["dxdt"])
    aux = ca.Function("kinetic_aux", [x_all, u, p_all], [ca.vertcat(*growth)], ["x", "u", "p"], ["aux"])
    suf0 = "" if nm == 1 else "_m0"
    roles = ReactorRoles(volume="V", glucose=f"n_glc{suf0}", biomass=f"n_X{suf0}", acetate=None, product=f"n_P{suf0}", feed="F", vmax=None)
    pv = np.concatenate([np.atleast_1d(a) for a in pvals])
    # the kinetic parameters are constants of each member (ln Keq of either sign), never estimated
    cm = ControlModel(
        rhs=f,
        state_names=tuple(names),
        input_name="F",
        param_names=tuple(pnames),
        param_values=pv,
        roles=roles,
        symvar="SX",
        aux=aux,
        aux_names=tuple(f"growth_rate{'' if nm == 1 else f'_m{k}'}" for k in range(nm)),
        param_bounds=np.column_stack([np.full(pv.size, -np.inf), np.full(pv.size, np.inf)]),
    )
    s0 = float(ensemble.fixed_concentrations[s_idx]) if glucose0 is None else float(glucose0)
    x0 = np.concatenate([np.concatenate([np.ones(n), [s0 * volume0, biomass0 * volume0, 0.0]]) for _ in members] + [[volume0]])
    return KineticControlModel(cm, members, tuple(gi), tuple(bi), tuple(pi), len(names) - 1, x0, float(feed_glucose))
