"""A cheap control copy of the cell model: the embedded surrogate tabulated and fitted by cubic B-splines.

The MPC evaluates the cell model at every collocation point and IPOPT needs its exact Hessian at
every iteration; with a 2x64 SiLU network expanded as an SX graph that Hessian dominates the step
time (about 60 % of IPOPT's time here). The reactor only ever drives the surrogate through its
uptake inputs, and with a fixed oxygen uptake (paper figure 3) only through the glucose uptake:
the cell model restricted to the operating set is a smooth function of one or two variables. This
module samples the embedded surrogate (the network the plant uses, by its batched numpy form when
it has one) on a grid of the inputs and fits a C2 cubic B-spline (CasADi's ``bspline``
interpolant, which has exact first and second derivatives, works in SX and MX, and costs a few
table look-ups to evaluate).

The fit error is measured off the grid (mid-points) and returned, so it is reported, never assumed.
The plant and the offline optimum keep the full surrogate; only the controller (and estimator) use
the distilled copy, a small, stated plant-model mismatch.

The grid covers the surrogate's whole input domain by default (both inputs when both move, e.g.
with a dissolved-oxygen balance). Outside the grid the spline's inputs are clamped to its ends
(the fluxes are held at the boundary values, never the zeros a B-spline returns beyond its
knots); :meth:`DistilledCell.out_of_domain` flags such points, and a grid smaller than the
surrogate's domain is reported by :attr:`DistilledCell.covers_domain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.control.settings import ControlError
from mpc_bio.interrupts import check_interrupt

__all__ = ["DistilledCell", "distill_cell_model"]


@dataclass(frozen=True, eq=False)
class DistilledCell:
    """A distilled cell model and its measured fit error.

    Attributes
    ----------
    cell : mpc_bio.process.CellFluxModel
        Same inputs and outputs as the original, ``backend="bspline"``.
    grid : tuple of ndarray
        The sampling grid per varying input [mmol/gDW/h].
    fixed : dict
        Inputs held fixed (name -> value, mmol/gDW/h); the distilled function ignores them.
    max_abs_error, max_rel_error : ndarray, shape (n_outputs,)
        Largest absolute error per output at the grid mid-points (flux units), and relative to
        the larger of the output's range and its largest magnitude over the grid [-].
    varying : tuple of str
        The inputs spanned by the grid, in the order of ``grid``.
    """

    cell: object
    grid: tuple
    fixed: dict
    max_abs_error: np.ndarray
    max_rel_error: np.ndarray
    varying: tuple = ()

    @property
    def covers_domain(self) -> bool:
        """Whether the grid spans the original cell model's whole domain in every varying input."""
        c = self.cell
        for n, g in zip(self.varying, self.grid):
            i = c.input_names.index(n)
            if g[0] > c.domain_low[i] + 1e-9 or g[-1] < c.domain_high[i] - 1e-9:
                return False
        return True

    def out_of_domain(self, uptakes) -> np.ndarray:
        """Which uptake vectors lie outside the grid (where the spline holds its boundary values).

        Parameters
        ----------
        uptakes : array_like, shape (n, k) or (k,)
            Inputs of the cell model [mmol/gDW/h], in the order of ``cell.input_names``.

        Returns
        -------
        ndarray of bool, shape (n,)
            True where a varying input is outside its grid (beyond 1e-9 of the grid's span), or a
            fixed input differs from its fixed value.
        """
        U = np.atleast_2d(np.asarray(uptakes, dtype=float))
        names = list(self.cell.input_names)
        out = np.zeros(U.shape[0], dtype=bool)
        for n, g in zip(self.varying, self.grid):
            tol = 1e-9 * (1.0 + g[-1] - g[0])
            u = U[:, names.index(n)]
            out |= (u < g[0] - tol) | (u > g[-1] + tol)
        for n, v in self.fixed.items():
            out |= np.abs(U[:, names.index(n)] - v) > 1e-9 * (1.0 + abs(v))
        return out


def distill_cell_model(
    cell,
    *,
    upper: dict[str, float | None],
    fixed: dict[str, float] | None = None,
    step: float | dict = 0.01,
    max_check: int = 10000,
) -> DistilledCell:
    """Tabulate ``cell`` on a grid of its varying inputs and fit a cubic B-spline per output.

    Parameters
    ----------
    cell : mpc_bio.process.CellFluxModel
        The embedded surrogate (any CasADi function of the uptakes).
    upper : dict of str to float or None
        Upper end of the grid for each varying input [mmol/gDW/h] (the grid starts at the lower
        end of the cell model's domain, 0 for uptakes); None takes the upper end of the cell
        model's domain (recommended: the spline then covers every input the surrogate is valid
        for). With two entries the grid is two-dimensional.
    fixed : dict of str to float, optional
        Inputs held at a constant value (e.g. ``{"oxygen": 15.0}`` for a fixed oxygen uptake).
    step : float or dict of str to float
        Grid spacing [mmol/gDW/h], one for all varying inputs or one per input. The default 0.01 resolves the narrow bends of a sharpened surrogate
        (fit error ~2e-4 of the range vs 3e-3 at 0.05, e_coli_core with oxygen fixed); with two
        varying inputs the grid has (upper / step)^2 points: use a coarser step there.
    max_check : int
        Largest number of grid mid-points (cell centres) at which the fit error is measured; a
        seeded random subset is used when the grid has more cells.

    Returns
    -------
    DistilledCell
    """
    from mpc_bio.process import CellFluxModel

    fixed = dict(fixed or {})
    names = tuple(cell.input_names)
    unknown = sorted((set(upper) | set(fixed)) - set(names))
    if unknown:
        raise ControlError(f"distill_cell_model: unknown input(s) {unknown}; the cell model's inputs are {list(names)}.")
    missing = [n for n in names if n not in upper and n not in fixed]
    if missing:
        raise ControlError(f"distill_cell_model: input(s) {missing} need a grid end in 'upper' or a value in 'fixed'.")
    varying = [n for n in names if n in upper]
    steps = {n: float(step[n] if isinstance(step, dict) else step) for n in varying}
    for n, st in steps.items():
        if not st > 0:
            raise ControlError(f"The 'step' parameter of distill_cell_model must be > 0 for {n!r}. Got {st!r} instead.")
    grids = []
    for n in varying:
        i = names.index(n)
        lo = float(cell.domain_low[i]) if np.isfinite(cell.domain_low[i]) else 0.0
        hi = float(cell.domain_high[i]) if upper[n] is None else float(upper[n])
        if not hi > lo:
            raise ControlError(
                f"The grid end of input {n!r} in distill_cell_model must exceed the domain's lower end {lo}. Got {hi!r} instead."
            )
        grids.append(np.linspace(lo, hi, int(round((hi - lo) / steps[n])) + 1))
    if any(g.size < 4 for g in grids):
        raise ControlError("distill_cell_model needs at least 4 grid points per varying input; reduce 'step'.")
    mesh = np.meshgrid(*grids, indexing="ij")
    pts = np.zeros((mesh[0].size, len(names)))
    for j, n in enumerate(names):
        pts[:, j] = mesh[varying.index(n)].ravel(order="F") if n in upper else fixed[n]
    vals = _evaluate(cell, pts)  # (n_points, n_out), first grid dimension fastest
    spline = ca.interpolant("cell_bspline", "bspline", grids, vals.ravel(order="C"))
    u = ca.SX.sym("u", len(names))
    # clamp to the grid: a B-spline is zero beyond its knots, a held boundary value is not
    arg = ca.vertcat(*[ca.fmin(ca.fmax(u[names.index(n)], g[0]), g[-1]) for n, g in zip(varying, grids)])
    fun = ca.Function("cell_distilled", [u], [spline(arg)], ["uptakes"], ["fluxes"])
    # measured error at the cell mid-points (the worst place for an interpolant)
    mids = [0.5 * (g[:-1] + g[1:]) for g in grids]
    mm = np.meshgrid(*mids, indexing="ij")
    mp = np.zeros((mm[0].size, len(names)))
    for j, n in enumerate(names):
        mp[:, j] = mm[varying.index(n)].ravel() if n in upper else fixed[n]
    if mp.shape[0] > max_check:  # a seeded random subset of the mid-points
        mp = mp[np.sort(np.random.default_rng(0).choice(mp.shape[0], max_check, replace=False))]
    ref = _evaluate(cell, mp)
    got = np.asarray(fun.map(mp.shape[0])(mp.T)).T
    abs_err = np.max(np.abs(got - ref), axis=0)
    rng = np.maximum(np.maximum(vals.max(axis=0) - vals.min(axis=0), np.abs(vals).max(axis=0)), 1e-12)
    distilled = CellFluxModel(
        function=fun,
        input_names=cell.input_names,
        input_reactions=cell.input_reactions,
        output_ids=cell.output_ids,
        growth_id=cell.growth_id,
        domain_low=cell.domain_low,
        domain_high=cell.domain_high,
        backend="bspline",
        symbolic="SX",
    )
    return DistilledCell(distilled, tuple(grids), fixed, abs_err, abs_err / rng, tuple(varying))


#: Points per CasADi call when a cell model without a batched form is tabulated (Ctrl-C is
#: honoured between calls).
_CHUNK = 2000


def _evaluate(cell, pts: np.ndarray) -> np.ndarray:
    """The cell model's outputs (n, r) at uptakes ``pts`` (n, k): by its batched numpy form when it
    has one (the same network by BLAS, equal to the CasADi function to round-off and ~20x faster on
    a 4x256 net), else by its CasADi function in chunks of ``_CHUNK`` points."""
    if cell.batch is not None:
        return np.asarray(cell.batch(pts), dtype=float)
    out = []
    for i in range(0, pts.shape[0], _CHUNK):
        chunk = pts[i : i + _CHUNK]
        out.append(np.asarray(cell.function.map(chunk.shape[0])(chunk.T)).T)
        check_interrupt()
    return np.vstack(out)
