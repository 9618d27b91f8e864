"""Uptake kinetics: extracellular concentrations -> the cell model's inputs (paper 1, Eq. 2-3e).

The functions work on floats, numpy arrays and CasADi symbols alike (only arithmetic is used).
"""

from __future__ import annotations

from mpc_bio.process.settings import UptakeKinetics

__all__ = ["glucose_uptake", "oxygen_uptake", "gated_rate"]


def glucose_uptake(c_glc, kin: UptakeKinetics, vmax=None):
    """Specific glucose uptake, mmol/gDW/h: ``vmax * c / (km + c)`` (zero at c = 0).

    Parameters
    ----------
    c_glc : float, ndarray or casadi symbol
        Glucose concentration, mmol/L (>= 0 along any trajectory: the uptake vanishes at 0).
    kin : UptakeKinetics
        Vmax (mmol/gDW/h) and Km (mmol/L).
    vmax : optional
        Override of ``kin.glucose_vmax`` (e.g. a do-mpc parameter symbol).
    """
    vm = kin.glucose_vmax if vmax is None else vmax
    return vm * c_glc / (kin.glucose_km + c_glc)


def oxygen_uptake(c_o2, kin: UptakeKinetics):
    """Specific oxygen uptake, mmol/gDW/h: fixed, or Michaelis-Menten in the dissolved O2 (kla mode)."""
    if kin.oxygen == "fixed":
        return kin.oxygen_uptake
    return kin.oxygen_vmax * c_o2 / (kin.oxygen_km + c_o2)


def gated_rate(v, c, gate, if_else):
    """A product exchange flux with uptake switched off near zero concentration.

    Secretion (v >= 0) passes unchanged; uptake (v < 0) is scaled by ``c / (c + gate)`` so a
    product the cell model says it consumes can never be driven below zero.
    ``if_else(cond, a, b)`` is ``casadi.if_else`` or ``numpy.where``. ``gate = 0`` disables it.
    """
    if gate == 0:
        return v
    return if_else(v >= 0, v, v * c / (c + gate))
