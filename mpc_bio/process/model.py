"""The fed-batch model of paper 1, Eq. 2, as CasADi expressions.

    dV/dt      = F                                              [L/h]
    dn_glc/dt  = C_in F - q_glc(c_glc) n_X                      [mmol/h]
    dn_p/dt    = v_p(q) n_X         (tracked products p)        [mmol/h]
    dn_X/dt    = mu(q) n_X                                      [gDW/h]
    dn_o2/dt   = kLa (c* - c_o2) V - q_o2(c_o2) n_X   ("kla")   [mmol/h]

with c = n / V, q = (q_glc, q_o2) from :mod:`mpc_bio.process.kinetics` and (mu, v_p) from the
cell model (surrogate). Glucose consumption is by default the kinetic uptake q_glc itself (the
input the cell model is given), so it vanishes at zero glucose (``glucose_rate = "surrogate"``
uses the predicted exchange flux instead); product uptakes are gated near zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.process.cell import CellFluxModel
from mpc_bio.process.kinetics import gated_rate, glucose_uptake, oxygen_uptake
from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError

__all__ = ["FedBatchODE", "FedBatchSplit", "FluxLayout", "fedbatch_ode", "fedbatch_split", "OUTPUT_NAMES_BASE"]

#: Algebraic outputs recorded along trajectories (then one ``v_<product>`` per product).
OUTPUT_NAMES_BASE = ("growth", "q_glc", "q_o2")


@dataclass(frozen=True, eq=False)
class FedBatchODE:
    """The fed-batch right-hand side and its outputs as CasADi functions.

    Attributes
    ----------
    rhs : casadi.Function
        ``(x[n_x], F, p[n_p]) -> dx/dt[n_x]`` (units of ``state_names`` per h).
    outputs : casadi.Function
        ``(x, F, p) -> y[n_y]``: growth (1/h), q_glc, q_o2, v_<product> (mmol/gDW/h), and the
        cell model's inputs (uptakes, mmol/gDW/h) as the last k entries.
    state_names, output_names, param_names : tuple of str
        Names in order; ``param_names`` is ``("vmax_glc",)`` when the glucose Vmax is a parameter.
    param_values : ndarray
        Nominal parameter values.
    settings : FedBatchSettings
    cell : CellFluxModel
    symbolic : {"SX", "MX"}
        The CasADi symbol type of ``rhs`` and ``outputs``; call them with symbols of this type.
    """

    rhs: ca.Function
    outputs: ca.Function
    state_names: tuple[str, ...]
    output_names: tuple[str, ...]
    param_names: tuple[str, ...]
    param_values: np.ndarray
    settings: FedBatchSettings
    cell: CellFluxModel
    symbolic: str

    @property
    def n_x(self) -> int:
        """Number of states."""
        return len(self.state_names)


def _check_cell(settings: FedBatchSettings, cell, glucose_rate: str) -> None:
    """The cell model (or :class:`FluxLayout`) has the inputs and outputs the reactor uses."""
    cell.input_index(settings.glucose_input)
    cell.input_index(settings.oxygen_input)
    if glucose_rate != "kinetics":
        cell.output_index(settings.glucose_exchange)
    for rid in settings.products.values():
        cell.output_index(rid)
    if len(cell.input_names) != 2:
        raise ProcessSettingsError(f"The cell model must have the two inputs glucose and oxygen; it has {list(cell.input_names)}.")


def _expressions(settings: FedBatchSettings, cell, x, F, vmax, glucose_rate: str):
    """dx/dt and outputs as expressions of the state vector x, feed F and glucose Vmax."""
    s, kin = settings, settings.kinetics
    names = s.state_names
    idx = {n: i for i, n in enumerate(names)}
    V = x[idx["V"]]
    nX = x[idx["n_X"]]
    c_glc = ca.fmax(x[idx["n_glc"]], 0) / V
    q_glc = glucose_uptake(c_glc, kin, vmax)
    if kin.oxygen == "kla":
        c_o2 = ca.fmax(x[idx["n_o2"]], 0) / V
        q_o2 = oxygen_uptake(c_o2, kin)
    else:
        c_o2 = None
        q_o2 = oxygen_uptake(None, kin)
    u = [None, None]
    u[cell.input_index(s.glucose_input)] = q_glc
    u[cell.input_index(s.oxygen_input)] = q_o2
    uptakes = ca.vertcat(*u)
    v = cell.function(uptakes)
    mu = v[cell.output_index(cell.growth_id)]
    dx = [None] * len(names)
    dx[idx["V"]] = F
    if glucose_rate == "kinetics":
        dx[idx["n_glc"]] = s.feed_glucose * F - q_glc * nX
    else:
        v_glc = v[cell.output_index(s.glucose_exchange)]
        if glucose_rate == "surrogate":
            v_glc = gated_rate(v_glc, c_glc, s.product_uptake_gate, ca.if_else)
        dx[idx["n_glc"]] = s.feed_glucose * F + v_glc * nX
    vp = []
    for p, rid in s.products.items():
        c_p = ca.fmax(x[idx[f"n_{p}"]], 0) / V
        rate = gated_rate(v[cell.output_index(rid)], c_p, s.product_uptake_gate, ca.if_else)
        vp.append(rate)
        dx[idx[f"n_{p}"]] = rate * nX
    dx[idx["n_X"]] = mu * nX
    if kin.oxygen == "kla":
        dx[idx["n_o2"]] = kin.kla * (kin.o2_saturation - c_o2) * V - q_o2 * nX
    y = ca.vertcat(mu, q_glc, q_o2, *vp, uptakes)
    return ca.vertcat(*dx), y


def fedbatch_ode(
    settings: FedBatchSettings, cell: CellFluxModel, *, symbolic: str | None = None, vmax_as_parameter: bool = False
) -> FedBatchODE:
    """The plain CasADi fed-batch model (for integrators, simulators and custom optimal control).

    Parameters
    ----------
    settings : FedBatchSettings
    cell : CellFluxModel
        Flux function of the uptakes (e.g. :func:`mpc_bio.process.embed_cell_model`).
    symbolic : {"SX", "MX"}, optional
        Symbol type (default: the cell model's, SX when it allows).
    vmax_as_parameter : bool
        Make the glucose Vmax (mmol/gDW/h) a parameter ``vmax_glc`` instead of a constant.
    """
    if not isinstance(cell, CellFluxModel):
        raise ProcessSettingsError(
            "The flux model of the fed-batch must be a CellFluxModel (see mpc_bio.process.embed_cell_model). "
            f"Got {type(cell).__name__} instead."
        )
    _check_cell(settings, cell, settings.glucose_rate)
    sym_name = symbolic or cell.symbolic
    if sym_name not in ("SX", "MX"):
        raise ProcessSettingsError(f"The 'symbolic' parameter must be 'SX' or 'MX'. Got {sym_name!r} instead.")
    if sym_name == "SX" and cell.symbolic == "MX":
        raise ProcessSettingsError(
            f"The cell model ({cell.backend}) can only be called with MX symbols; use symbolic='MX' "
            "(L4CasADi externals have no SX evaluation)."
        )
    sym = ca.SX if sym_name == "SX" else ca.MX
    x = sym.sym("x", len(settings.state_names))
    F = sym.sym("F")
    p = sym.sym("p", 1 if vmax_as_parameter else 0)
    vmax = p[0] if vmax_as_parameter else None
    dx, y = _expressions(settings, cell, x, F, vmax, settings.glucose_rate)
    out_names = (*OUTPUT_NAMES_BASE, *(f"v_{q}" for q in settings.products), *(f"u_{n}" for n in cell.input_names))
    pnames = ("vmax_glc",) if vmax_as_parameter else ()
    return FedBatchODE(
        rhs=ca.Function("fedbatch_rhs", [x, F, p], [dx], ["x", "F", "p"], ["dxdt"]),
        outputs=ca.Function("fedbatch_outputs", [x, F, p], [y], ["x", "F", "p"], ["y"]),
        state_names=settings.state_names,
        output_names=out_names,
        param_names=pnames,
        param_values=np.array([settings.kinetics.glucose_vmax] if vmax_as_parameter else []),
        settings=settings,
        cell=cell,
        symbolic=sym_name,
    )


@dataclass(frozen=True, eq=False)
class FedBatchSplit:
    """The fed-batch right-hand side split at the cell model: the cell's fluxes become an input.

    For callers that evaluate the cell model themselves (e.g. one batched call of a network at
    many points): ``rhs(x, F, p, uptakes_to_fluxes(uptakes(x, p)))`` is the right-hand side of
    :func:`fedbatch_ode` with ``vmax_as_parameter=True``, and ``outputs`` likewise its outputs.

    Attributes
    ----------
    uptakes : casadi.Function
        ``(x[n_x], p[1]) -> q[k]``: the cell model's inputs (uptakes, mmol/gDW/h) at a state, in
        the order of ``input_names``.
    rhs : casadi.Function
        ``(x, F, p, v[r]) -> dx/dt[n_x]`` given the cell model's outputs v (mmol/gDW/h; growth 1/h)
        in the order of ``output_ids``; states in the units of ``state_names``, feed F in L/h.
    outputs : casadi.Function
        ``(x, F, p, v) -> y``: the outputs of :attr:`FedBatchODE.outputs` given v.
    state_names, param_names, input_names, output_ids : tuple of str
        ``param_names`` is ``("vmax_glc",)``.
    param_values : ndarray
        Nominal glucose Vmax [mmol/gDW/h].
    """

    uptakes: ca.Function
    rhs: ca.Function
    outputs: ca.Function
    state_names: tuple[str, ...]
    param_names: tuple[str, ...]
    param_values: np.ndarray
    input_names: tuple[str, ...]
    output_ids: tuple[str, ...]

    @property
    def n_x(self) -> int:
        """Number of states."""
        return len(self.state_names)


@dataclass(frozen=True)
class FluxLayout:
    """What the entries of a flux vector are, for :func:`fedbatch_split` without a cell model
    (e.g. the pFBA's fluxes in the LP-in-the-loop dFBA).

    Attributes
    ----------
    input_names : tuple of str
        The uptake inputs in order (mmol/gDW/h).
    output_ids : tuple of str
        Reaction id of each flux (mmol/gDW/h; growth 1/h).
    growth_id : str
        The growth (biomass) reaction, one of ``output_ids``.
    """

    input_names: tuple[str, ...]
    output_ids: tuple[str, ...]
    growth_id: str

    def input_index(self, name: str) -> int:
        """Position of a named input."""
        if name not in self.input_names:
            raise ProcessSettingsError(f"The flux layout has no input {name!r}; its inputs are {list(self.input_names)}.")
        return self.input_names.index(name)

    def output_index(self, reaction_id: str) -> int:
        """Position of a reaction id."""
        if reaction_id not in self.output_ids:
            raise ProcessSettingsError(f"The flux layout has no reaction {reaction_id!r}; its reactions are {list(self.output_ids)}.")
        return self.output_ids.index(reaction_id)


class _FluxInput:
    """Stands in for a cell model: its flux function returns a free symbol and records its input."""

    def __init__(self, layout, v) -> None:
        self.layout, self._v, self.q = layout, v, None
        self.growth_id = layout.growth_id

    def function(self, q):
        self.q = q
        return self._v

    def input_index(self, name):
        return self.layout.input_index(name)

    def output_index(self, rid):
        return self.layout.output_index(rid)


#: ``glucose_rate`` of :func:`fedbatch_split`: the two of :class:`FedBatchSettings` and ``"exchange"``.
SPLIT_GLUCOSE_RATES = ("kinetics", "surrogate", "exchange")


def fedbatch_split(settings: FedBatchSettings, cell, *, glucose_rate: str | None = None) -> FedBatchSplit:
    """The fed-batch model split at the cell model (any backend: the cell's function is not called).

    Parameters
    ----------
    settings : FedBatchSettings
    cell : CellFluxModel or FluxLayout
        Gives the input order, the output ids (the entries of v) and the growth reaction.
    glucose_rate : {"kinetics", "surrogate", "exchange"}, optional
        Glucose consumption (default ``settings.glucose_rate``); ``"exchange"``: the glucose
        exchange flux in v as it is, not gated (the LP-in-the-loop dFBA, whose LP bounds the
        uptake by the kinetic rate).

    Returns
    -------
    FedBatchSplit
        With the glucose Vmax as the parameter ``vmax_glc``.
    """
    glucose_rate = glucose_rate or settings.glucose_rate
    if glucose_rate not in SPLIT_GLUCOSE_RATES:
        raise ProcessSettingsError(
            f"The 'glucose_rate' parameter of fedbatch_split must be one of {list(SPLIT_GLUCOSE_RATES)}. Got {glucose_rate!r} instead."
        )
    _check_cell(settings, cell, glucose_rate)
    nx, r = len(settings.state_names), len(cell.output_ids)
    x, F, p, v = ca.SX.sym("x", nx), ca.SX.sym("F"), ca.SX.sym("p", 1), ca.SX.sym("v", r)
    stand_in = _FluxInput(cell, v)
    dx, y = _expressions(settings, stand_in, x, F, p[0], glucose_rate)
    return FedBatchSplit(
        uptakes=ca.Function("uptakes", [x, p], [stand_in.q], ["x", "p"], ["q"]),
        rhs=ca.Function("rhs_split", [x, F, p, v], [dx], ["x", "F", "p", "v"], ["dxdt"]),
        outputs=ca.Function("outputs_split", [x, F, p, v], [y], ["x", "F", "p", "v"], ["y"]),
        state_names=tuple(settings.state_names),
        param_names=("vmax_glc",),
        param_values=np.array([settings.kinetics.glucose_vmax], dtype=float),
        input_names=tuple(cell.input_names),
        output_ids=tuple(cell.output_ids),
    )
