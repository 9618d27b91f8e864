"""Adapters between :mod:`mpc_bio.process` and the control stage.

* :func:`control_model_from_process`: the CasADi fed-batch model of :mod:`mpc_bio.process`
  (surrogate embedded, glucose Vmax as a parameter) seen as a :class:`ControlModel`.
* :class:`DfbaPlant`: the LP-in-the-loop dFBA simulator of :mod:`mpc_bio.process` used as the
  plant of a closed loop, one control step at a time (each step is a short
  :func:`mpc_bio.process.simulate_dfba` run started from the current state, with a reused pFBA
  solver).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpc_bio.control.model import ControlModel
from mpc_bio.control.settings import ControlError, ReactorRoles

__all__ = ["control_model_from_process", "DfbaPlant", "process_roles", "vmax_bounds"]


def process_roles(reactor) -> ReactorRoles:
    """Roles of the states of :class:`mpc_bio.process.FedBatchSettings` (acetate = ``n_ac`` if tracked)."""
    return ReactorRoles(
        volume="V",
        glucose="n_glc",
        biomass="n_X",
        acetate="n_ac" if "ac" in reactor.products else None,
        product=None,
        feed="F",
        vmax="vmax_glc",
    )


def control_model_from_process(reactor, cell, *, symvar: str | None = None, roles: ReactorRoles | None = None) -> ControlModel:
    """The fed-batch model of :func:`mpc_bio.process.fedbatch_ode` (glucose Vmax as a parameter) as a :class:`ControlModel`.

    Parameters
    ----------
    reactor : mpc_bio.process.FedBatchSettings
        Reactor settings (initial state, feed glucose, products, kinetics).
    cell : mpc_bio.process.CellFluxModel
        The embedded surrogate (keep only the outputs the reactor needs: it shrinks the graph).
    symvar : {"SX", "MX"}, optional
        CasADi symbol type (default: SX unless the cell model is MX-only).
    roles : ReactorRoles, optional
        Defaults to :func:`process_roles`.

    Returns
    -------
    ControlModel
        Its ``aux`` outputs are the reactor's algebraic outputs (growth [1/h], ``q_glc``, ``q_o2``,
        ``v_<product>`` and the cell model's inputs ``u_<name>``, mmol/gDW/h).
    """
    from mpc_bio.process import fedbatch_ode

    ode = fedbatch_ode(reactor, cell, symbolic=symvar, vmax_as_parameter=True)
    return ControlModel(
        rhs=ode.rhs,
        state_names=tuple(ode.state_names),
        input_name="F",
        param_names=ode.param_names,
        param_values=ode.param_values,
        roles=roles or process_roles(reactor),
        symvar=ode.symbolic,
        aux=ode.outputs,
        aux_names=tuple(ode.output_names),
        param_bounds=np.array([vmax_bounds(reactor, cell)]),
    )


def vmax_bounds(reactor, cell) -> tuple[float, float]:
    """Range of the glucose Vmax [mmol/gDW/h] inside which the glucose uptake stays in the cell model's domain.

    The uptake ``vmax c / (km + c)`` approaches Vmax at high glucose, so Vmax may not exceed the
    upper end of the surrogate's glucose-input domain; the lower end is 1 % of the nominal Vmax
    (a positive uptake capacity).
    """
    i = cell.input_index(reactor.glucose_input)
    hi = float(cell.domain_high[i])
    nominal = reactor.kinetics.glucose_vmax
    if nominal > hi:
        raise ControlError(
            f"The glucose Vmax ({nominal} mmol/gDW/h) must not exceed the cell model's glucose-uptake domain "
            f"(up to {hi} mmol/gDW/h). Got glucose_vmax = {nominal} instead."
        )
    return 0.01 * nominal, hi


class DfbaPlant:
    """LP-in-the-loop dFBA (fast pFBA at every ``dfba_step``) as a closed-loop plant.

    Each step continues from the state it is given (dissolved O2 included), so ``k`` steps give
    the trajectory of one uninterrupted run at the same feeds.

    Parameters
    ----------
    reactor : mpc_bio.process.FedBatchSettings
        Reactor settings (kinetics, products, ``dfba_step``); initial state and feed are replaced
        at every step.
    model : cobra.Model
        The metabolic model (never modified).
    relax : bool
        Elastic relaxation of infeasible LPs (on by default: a closed loop must continue). Without
        it an infeasible LP ends the step early and the event is recorded in :attr:`events`.
    substeps : int
        Stored states per control step.
    method, rtol, atol
        Integration of each step: see :func:`mpc_bio.process.simulate_dfba`.
    """

    name = "dfba"

    def __init__(
        self, reactor, model, *, relax: bool = True, substeps: int = 5, method: str = "auto", rtol: float = 1e-8, atol: float = 1e-10
    ):
        from mpc_bio.metabolism.pfba import PFBASolver
        from mpc_bio.metabolism.settings import PFBASettings

        self.reactor = reactor
        self.names = reactor.state_names
        ps = PFBASettings(
            inputs=((reactor.glucose_input, reactor.glucose_exchange), (reactor.oxygen_input, reactor.oxygen_exchange)),
            relax=relax,
        )
        self.solver = PFBASolver(model, ps)
        self.relax = relax
        self.substeps = substeps
        self.dfba_options = {"method": method, "rtol": rtol, "atol": atol}
        self.events: list[str] = []
        self.lp_solves = 0
        self.wall_time = 0.0

    def step(self, x, feed: float, dt: float) -> np.ndarray:
        """States at ``substeps`` equally spaced times of one step of ``dt`` h at feed ``feed`` L/h."""
        from mpc_bio.process import FeedProfile, simulate_dfba

        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        out_step = dt / self.substeps
        r = dataclasses.replace(
            self.reactor,
            feed=FeedProfile(times=(0.0,), rates=(float(feed),)),
            batch_time=dt,
            output_step=out_step,
            dfba_step=min(self.reactor.dfba_step, out_step),
        )
        res = simulate_dfba(r, self.solver, relax=self.relax, x0=x, **self.dfba_options)
        self.lp_solves += int(res.info.get("lp_solves", 0))
        self.wall_time += float(res.wall_time)
        for e in res.events:
            self.events.append(f"{e.kind}: {e.message}")
        states = np.column_stack([res.state(n) for n in self.names])[1:]
        if states.shape[0] < self.substeps:  # stopped early (no relaxation): hold the last state
            if states.shape[0] == 0:
                states = x[None, :]
            states = np.vstack([states, np.repeat(states[-1:], self.substeps - states.shape[0], axis=0)])
        if states.shape[1] != x.size:
            raise ControlError(f"The dFBA plant returned {states.shape[1]} states, the control model has {x.size}.")
        return np.maximum(states[: self.substeps], 0.0)
