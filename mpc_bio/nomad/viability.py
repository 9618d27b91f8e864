"""Viability of an engineered strain: a stable steady state inside the physiological range.

The reactor integrates any strain, also one whose intracellular pools grow without bound (no
steady state: e.g. EPSP (3psme_c) or DAHP (2dda7p_c) rising steadily to 10^4-10^5 mM when DDPA
is 5x up and the pathway below it is saturated), and such a transient can carry a high titer
for hours. The reference strain itself leaves the sampled range when glucose runs out, so a
bound on the whole time course would reject it too; the steady state at the reference medium
(the exponential phase the models were built for) is the unambiguous test
(:func:`strain_steady_state`).

:class:`ViabilityRule` is the one rule every strain is judged by - reference, designs, the MCA
baseline, the experimental strains - in verification, sensitivity and the paper's experiments:
the steady state exists, is linearly stable, keeps every intracellular concentration within
``concentration_fold`` of the model's reference concentration (the NRA bound
``max_concentration_fold``) and keeps the growth flux at or above ``min_growth_ratio`` of the
reference (the NRA bound ``1 - max_growth_reduction``). A design is held to the bounds of the NRA
that made it (:meth:`ViabilityRule.from_nra`); strains made without NRA are held to the same
bounds as the designs they are compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mpc_bio.nomad.dynamics import solve_steady_state
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import evaluate_rate_jacobian
from mpc_bio.nomad.mca import reduced_jacobian

__all__ = ["StrainSteadyState", "ViabilityRule", "strain_steady_state"]


@dataclass(frozen=True)
class StrainSteadyState:
    """Nonlinear steady state of one engineered strain at the reference medium.

    Attributes
    ----------
    converged : bool
        Newton (from the reference state, then after a relaxation) found a steady state with
        positive concentrations and the moiety totals of the reference.
    stable : bool
        Every eigenvalue of the reduced Jacobian at that state has a negative real part.
    max_real_eigenvalue : float
        Largest real part (1/h); NaN without a steady state.
    growth_ratio, yield_ratio, product_ratio : float
        Growth flux, product/substrate flux ratio and product flux relative to the reference
        steady state (ratios); NaN without a steady state.
    max_abs_log_concentration_change : float
        max_i |ln(x_i / x_i,ref)| (ln units).
    directions_kept : bool
        Every reference flux keeps its sign.
    message : str
        Why the strain is not valid ("" when it is).
    min_concentration, max_concentration : float
        Smallest and largest intracellular concentration at the steady state (mM); NaN
        without one.
    within_range : bool
        Every steady-state concentration lies inside the physiological range it was checked
        against (True when no range was given).
    """

    converged: bool
    stable: bool
    max_real_eigenvalue: float
    growth_ratio: float
    yield_ratio: float
    product_ratio: float
    max_abs_log_concentration_change: float
    directions_kept: bool
    message: str = ""
    min_concentration: float = math.nan
    max_concentration: float = math.nan
    within_range: bool = True

    @property
    def valid(self) -> bool:
        """True when the strain is viable: a stable steady state inside the physiological range."""
        return self.converged and self.stable and self.within_range


@dataclass(frozen=True)
class ViabilityRule:
    """When a strain's steady state counts as viable.

    Attributes
    ----------
    concentration_fold : float or None
        Every intracellular steady-state concentration must lie within
        [x_ref / fold, x_ref fold] of the same model's reference concentration (ratio > 1; None:
        no concentration bound).
    min_growth_ratio : float or None
        The steady-state growth flux must be at least this fraction of the reference growth
        (ratio in [0, 1]; None: no growth bound).
    """

    concentration_fold: float | None = 3.0
    min_growth_ratio: float | None = 0.8

    def __post_init__(self) -> None:
        f, g = self.concentration_fold, self.min_growth_ratio
        if f is not None and not (isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f > 1.0):
            raise ValueError(f"The 'concentration_fold' parameter of ViabilityRule must be a finite number > 1 or None. Got {f!r} instead.")
        if g is not None and not (isinstance(g, (int, float)) and not isinstance(g, bool) and 0.0 <= g <= 1.0):
            raise ValueError(f"The 'min_growth_ratio' parameter of ViabilityRule must be a number in [0, 1] or None. Got {g!r} instead.")

    @classmethod
    def from_nra(cls, nra) -> "ViabilityRule":
        """The bounds of an NRA (:class:`~mpc_bio.nomad.nra_settings.NRASettings`): its
        ``max_concentration_fold`` and growth >= 1 - ``max_growth_reduction``."""
        return cls(float(nra.max_concentration_fold), 1.0 - float(nra.max_growth_reduction))

    def label(self) -> str:
        """Short description, e.g. "3-fold concentrations, growth >= 0.8"."""
        parts = [f"{self.concentration_fold:g}-fold concentrations" if self.concentration_fold else "concentrations free"]
        parts.append(f"growth >= {self.min_growth_ratio:g}" if self.min_growth_ratio is not None else "growth free")
        return ", ".join(parts)

    def failure(self, steady: "StrainSteadyState | None") -> str:
        """Why a strain with steady state ``steady`` is not viable under this rule ("" when it is).

        None (not checked) is viable: the rule needs a steady state to judge.
        """
        if steady is None:
            return ""
        if not steady.converged:
            return steady.message or "no steady state reached"
        if not steady.stable:
            return f"unstable steady state (max Re(lambda) = {steady.max_real_eigenvalue:.3g} 1/h)"
        f = self.concentration_fold
        # 1e-9 in ln units: a concentration exactly at the NRA bound counts as inside
        if f is not None and steady.max_abs_log_concentration_change > math.log(f) + 1e-9:
            return (
                f"steady state leaves the {f:g}-fold concentration bound: max |ln(x/x_ref)| = "
                f"{steady.max_abs_log_concentration_change:.3g} > ln {f:g} = {math.log(f):.3g}"
            )
        g = self.min_growth_ratio
        if g is not None and not steady.growth_ratio >= g - 1e-9:
            return f"steady-state growth {steady.growth_ratio:.3g} of the reference < {g:g}"
        return ""

    def viable(self, steady: "StrainSteadyState | None") -> bool:
        """True when :meth:`failure` is empty."""
        return self.failure(steady) == ""


def strain_steady_state(
    ensemble: KineticEnsemble,
    model: int,
    vmax_fold: np.ndarray | None = None,
    *,
    relax_hours: tuple[float, ...] = (5.0, 50.0),
    concentration_range: tuple[float, float] | None = None,
) -> StrainSteadyState:
    """Steady state and linear stability of model ``model`` with Vmax x ``vmax_fold``.

    Newton from the reference state first; if it fails, the intracellular ODE is integrated
    from the reference state for each of ``relax_hours`` (h) in turn and Newton restarts at its
    end. The reduced Jacobian at the solution gives the stability. A strain for which none of
    these reaches a steady state (typically metabolites accumulating or draining without
    bound, or the integrator giving up) is reported as having none: a failure for the
    statistics, not an error. Never raises for a failed solve.

    With ``concentration_range`` (low, high) in mM, a steady state with any intracellular
    concentration outside it is not viable either (``within_range`` False): the kinetic
    model is then evaluated far outside the concentrations its parameters were sampled at.
    """
    if concentration_range is not None:
        lo_c, hi_c = (float(v) for v in concentration_range)
        if not (0.0 < lo_c < hi_c and math.isfinite(hi_c)):
            raise ValueError(f"concentration_range must be (low, high) with 0 < low < high (mM). Got {concentration_range!r}.")
    net = ensemble.network
    fold = np.ones(net.n_reactions) if vmax_fold is None else np.asarray(vmax_fold, dtype=float)
    nan = math.nan
    ss = solve_steady_state(ensemble, model, vmax_fold=fold)
    for hours in relax_hours:
        if ss.converged:
            break
        ss = solve_steady_state(ensemble, model, vmax_fold=fold, relax_hours=float(hours))
    if not ss.converged:
        reason = ss.message.splitlines()[0][:120] if ss.message else ""
        return StrainSteadyState(
            False,
            False,
            nan,
            nan,
            nan,
            nan,
            nan,
            False,
            f"no steady state reached (Newton from the reference and after {max(relax_hours, default=0):g} h "
            f"relaxation; residual {ss.residual:.3g}; {reason})",
        )
    x_ref, xf, K, lk, vm = ensemble.parameters([model])
    E = evaluate_rate_jacobian(net, ss.concentrations[None, :], xf, K, lk, vm * fold[None, :])
    mr = float(np.linalg.eigvals(reduced_jacobian(ensemble, [model], rate_jacobian=E)[0]).real.max())
    v0 = ensemble.fluxes[model]
    g, p, s = (net.reaction_index(r) for r in (net.growth_reaction, net.product_reaction, net.substrate_reaction))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ss.fluxes / v0
    nz = v0 != 0
    kept = bool(np.all(ratio[nz] > 0))
    dlnx = float(np.max(np.abs(np.log(ss.concentrations / x_ref[0]))))
    stable = mr < 0
    x_min, x_max = float(np.min(ss.concentrations)), float(np.max(ss.concentrations))
    inside = concentration_range is None or (x_min >= lo_c and x_max <= hi_c)
    msg = ""
    if not stable:
        msg = f"unstable steady state (max Re(lambda) = {mr:.3g} 1/h)"
    elif not inside:
        out = [(net.metabolite_ids[i], float(c)) for i, c in enumerate(ss.concentrations) if not lo_c <= c <= hi_c]
        worst = max(out, key=lambda t: abs(math.log(t[1] / (hi_c if t[1] > hi_c else lo_c))))
        msg = (
            f"steady state outside the physiological range [{lo_c:.3g}, {hi_c:.3g}] mM: {len(out)} metabolite(s), "
            f"e.g. {worst[0]} at {worst[1]:.3g} mM"
        )
    return StrainSteadyState(
        True, stable, mr, float(ratio[g]), float(ratio[p] / ratio[s]), float(ratio[p]), dlnx, kept, msg, x_min, x_max, bool(inside)
    )
