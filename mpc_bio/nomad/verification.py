"""Nonlinear verification of strain designs: batch and fed-batch reactors, expression sensitivity.

NOMAD (Methods, "In silico design verification and sensitivity analysis"): NRA predicts with a
log-linear model around the reference state; here each design is applied to every kinetic
model as Vmax_j x fold_j and the full nonlinear model is integrated in a reactor.

Reactor (well mixed, volume V in L; all rates from the kinetic model, units mM, gDW/L, h):

    dz/dt = S v(x, s) / V_cell / x_ref                 intracellular, z = x / x_ref
    ds/dt = S_fixed[s] v X + F/V (s_in - s)             substrate in the medium (mM)
    dX/dt = v_growth X - F/V X                          biomass (gDW/L)
    dP/dt = v_product X - F/V P                         product titer (mM)
    dV/dt = F                                           volume (L)

With F = 0 this is the batch reactor of the ensemble stage
(:func:`mpc_bio.nomad.dynamics.simulate_batch`); the feed F(t) (L/h) is piecewise constant,
given as a :class:`FeedProfile` or any callable of time (held over each output interval), so
optimised feeds from the control layer plug in directly. Other boundary metabolites are fixed.

Comparison protocol (:func:`verify_strains`): the cells start at the reference steady state
with the medium's reference glucose; all strains of one model are compared at one fixed time,
the end of that model's reference-strain batch fermentation (glucose below 1% of the initial;
paper: titers compared at the end of the fermentation period, slower designs reaching them only
later). Growth loss feeds back into the titer through the biomass X in dP/dt = v_product X:
a slower strain has made less product by then. Reading at a late t_end instead (every strain
has exhausted its glucose) measures the overall yield only. A strain counts as a failure in a
model when its design is not applicable there, the integration fails, it has no stable
steady state at the reference medium (:func:`strain_steady_state`), or that steady state has
an intracellular concentration outside the ensemble's physiological range widened by
``VerificationSettings.viability_concentration_fold`` (default 3, the NRA bound); failures are
losses in every comparison (:meth:`VerificationResult.compare`), never dropped, and count as
zero titer in the ensemble means of :meth:`VerificationResult.titer_statistics`, which gives
the means over viable models and as simulated beside them.

Why a steady state and not the batch time course: the reactor integrates any strain, also one
whose intracellular pools grow without bound (no steady state: e.g. EPSP (3psme_c) or DAHP
(2dda7p_c) rising steadily to 10^4-10^5 mM when DDPA is 5x up and the pathway below it is
saturated), and such a transient can carry a high titer for
hours. The reference strain itself leaves the sampled range when glucose runs out, so a bound
on the whole time course would reject it too; the steady state at the reference medium (the
exponential phase the models were built for) is the unambiguous test.

Sensitivity: the mean NRA fold changes of a design are perturbed uniformly by +/- a fraction
(paper: 50%), all member enzymes together and each one alone, ``n_draws`` times per model;
titers are read at the batch verification's readout times.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import casadi as ca
import numpy as np

from mpc_bio.nomad.dynamics import solve_steady_state, substrate_species
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import evaluate_rate_jacobian, rate_expressions
from mpc_bio.nomad.mca import reduced_jacobian
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.nra_settings import SensitivitySettings, VerificationSettings

__all__ = [
    "FeedProfile",
    "ReactorSimulation",
    "StrainSteadyState",
    "strain_steady_state",
    "VerificationResult",
    "SensitivityResult",
    "vmax_fold_from_log_changes",
    "simulate_reactor",
    "verify_strains",
    "expression_sensitivity",
]

_OPTS = {"abstol": 1e-9, "reltol": 1e-7, "max_num_steps": 50000, "disable_internal_warnings": True}


@dataclass(frozen=True)
class FeedProfile:
    """Piecewise-constant feed: rate ``rates_l_per_h[k]`` from ``times_h[k]`` to the next time.

    Attributes
    ----------
    times_h : tuple of float
        Segment start times (h), increasing, first 0.
    rates_l_per_h : tuple of float
        Feed rate per segment (L/h), >= 0.
    glucose_mmol_per_l : float
        Substrate concentration of the feed (mM).
    """

    times_h: tuple[float, ...]
    rates_l_per_h: tuple[float, ...]
    glucose_mmol_per_l: float

    def __post_init__(self) -> None:
        t = tuple(float(v) for v in self.times_h)
        r = tuple(float(v) for v in self.rates_l_per_h)
        if not t or len(t) != len(r):
            raise ValueError(f"FeedProfile needs as many rates as times (>= 1). Got {len(t)} and {len(r)}.")
        if t[0] != 0.0 or any(b <= a for a, b in zip(t, t[1:])):
            raise ValueError(f"The 'times_h' of FeedProfile must start at 0 and increase. Got {t!r} instead.")
        if any(not math.isfinite(v) or v < 0 for v in r):
            raise ValueError(f"The 'rates_l_per_h' of FeedProfile must be finite and >= 0. Got {r!r} instead.")
        if not math.isfinite(self.glucose_mmol_per_l) or self.glucose_mmol_per_l < 0:
            raise ValueError(f"The 'glucose_mmol_per_l' of FeedProfile must be >= 0. Got {self.glucose_mmol_per_l!r} instead.")
        object.__setattr__(self, "times_h", t)
        object.__setattr__(self, "rates_l_per_h", r)

    @classmethod
    def from_settings(cls, settings: VerificationSettings) -> "FeedProfile":
        """The fed-batch feed of a :class:`VerificationSettings`."""
        return cls(settings.feed_times_h, settings.feed_rates_l_per_h, settings.feed_glucose_mmol_per_l)

    def rate(self, t: float) -> float:
        """Feed rate at time ``t`` (L/h)."""
        k = int(np.searchsorted(np.asarray(self.times_h), t, side="right")) - 1
        return self.rates_l_per_h[max(k, 0)]


@dataclass(frozen=True, eq=False)
class ReactorSimulation:
    """Time course of one strain (one model, one set of Vmax folds) in a reactor.

    Attributes
    ----------
    times : ndarray (n_t,)
        h.
    biomass : ndarray (n_t,)
        gDW/L.
    substrate : ndarray (n_t,)
        Medium substrate (glucose), mM.
    product : ndarray (n_t,)
        Product titer, mM.
    volume : ndarray (n_t,)
        L.
    feed : ndarray (n_t,)
        Feed rate held from each time to the next, L/h.
    growth_rate : ndarray (n_t,)
        Specific growth rate, 1/h.
    substrate_fed_mmol : float
        Substrate added by the feed, mmol.
    success : bool
    message : str
    """

    times: np.ndarray
    biomass: np.ndarray
    substrate: np.ndarray
    product: np.ndarray
    volume: np.ndarray
    feed: np.ndarray
    growth_rate: np.ndarray
    substrate_fed_mmol: float
    success: bool
    message: str = ""

    @property
    def final_titer(self) -> float:
        """Product titer at the end, mM."""
        return float(self.product[-1])

    @property
    def product_yield(self) -> float:
        """Product formed per substrate consumed over the run, mol/mol."""
        formed = self.product[-1] * self.volume[-1] - self.product[0] * self.volume[0]
        consumed = self.substrate[0] * self.volume[0] + self.substrate_fed_mmol - self.substrate[-1] * self.volume[-1]
        return float(formed / consumed) if consumed > 0 else math.nan


def vmax_fold_from_log_changes(
    network: KineticNetwork, enzyme_ids: Sequence[str], log_changes: np.ndarray
) -> np.ndarray:
    """Vmax multipliers (n_rxn,) from enzyme log changes (enzyme j scales reaction ``enzyme_ids[j]``)."""
    fold = np.ones(network.n_reactions)
    d = np.asarray(log_changes, dtype=float)
    for j, e in enumerate(enzyme_ids):
        if d[j] != 0.0:
            fold[network.reaction_index(e)] = math.exp(d[j])
    return fold


@lru_cache(maxsize=8)
def _reactor(network_json: str, cell_volume: float):
    net = KineticNetwork.from_dict(json.loads(network_json))
    s_idx = substrate_species(net)
    g = net.reaction_index(net.growth_reaction)
    pr = net.reaction_index(net.product_reaction)
    T, F, s_in = ca.SX.sym("T"), ca.SX.sym("F"), ca.SX.sym("s_in")
    # state scales (as the ensemble stage's batch): s = s_sc s~, X = X_sc X~, P = X_sc P~, V = V_sc V~
    s_sc, X_sc, V_sc = ca.SX.sym("s_sc"), ca.SX.sym("X_sc"), ca.SX.sym("V_sc")
    x_ref = ca.SX.sym("x_ref", net.n_metabolites)
    xf = ca.SX.sym("x_fixed", net.n_fixed)
    K = ca.SX.sym("K", net.n_slots)
    lk = ca.SX.sym("ln_keq", net.n_reactions)
    vm = ca.SX.sym("vmax", net.n_reactions)
    p = ca.vertcat(T, F, s_in, s_sc, X_sc, V_sc, x_ref, xf, K, lk, vm)
    z = ca.SX.sym("z", net.n_metabolites)
    s_t, X_t, P_t, V_t = ca.SX.sym("s"), ca.SX.sym("X"), ca.SX.sym("P"), ca.SX.sym("V")
    s_med = s_sc * s_t
    xf_r = ca.vertcat(*[s_med if k == s_idx else xf[k] for k in range(net.n_fixed)])
    v = rate_expressions(net, x_ref * z, xf_r, K, lk, vm)
    D = F / (V_sc * V_t)
    rhs = ca.vertcat(
        T * (ca.DM(net.stoichiometry) @ v) / cell_volume / x_ref,
        T * ((ca.DM(net.fixed_stoichiometry[s_idx]).T @ v) * X_sc * X_t + D * (s_in - s_med)) / s_sc,
        T * (v[g] * X_t - D * X_t),
        T * (v[pr] * X_t - D * P_t),
        T * F / V_sc,
    )
    state = ca.vertcat(z, s_t, X_t, P_t, V_t)
    dae = {"x": state, "p": p, "ode": rhs}
    growth = ca.Function("growth", [state, p], [v[g]])

    @lru_cache(maxsize=32)
    def integrator(grid: tuple[float, ...]):
        """CVODES over scaled time [0, 1] with outputs at ``grid`` (fractions of the segment)."""
        return ca.integrator("reactor", "cvodes", dae, 0.0, list(grid), _OPTS)

    return integrator, growth, s_idx


def _model_params(ensemble: KineticEnsemble, i: int, vmax_fold) -> np.ndarray:
    x, xf, K, lk, vm = (np.asarray(a)[0] if np.ndim(a) == 2 else np.asarray(a) for a in ensemble.parameters([i]))
    if vmax_fold is not None:
        vm = vm * np.asarray(vmax_fold, dtype=float)
    return np.concatenate([x, xf, K, lk, vm])


def simulate_reactor(
    ensemble: KineticEnsemble,
    model: int,
    *,
    vmax_fold: np.ndarray | None = None,
    settings: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    feed_glucose_mmol_per_l: float | None = None,
) -> ReactorSimulation:
    """Simulate one kinetic model (Vmax x ``vmax_fold``) in a batch or fed-batch reactor.

    Parameters
    ----------
    ensemble : KineticEnsemble
    model : int
        Index of the model in ``ensemble``.
    vmax_fold : ndarray (n_rxn,), optional
        Enzyme activity fold changes (the design); None for the reference strain.
    settings : VerificationSettings, optional
        Duration, output grid, initial conditions.
    feed : FeedProfile or callable or None
        None: batch. A :class:`FeedProfile`, or a callable t (h) -> F (L/h) held constant over
        each output interval (zero-order hold at the interval start).
    feed_glucose_mmol_per_l : float, optional
        Feed substrate concentration for a callable feed (mM); defaults to the settings'.

    Returns
    -------
    ReactorSimulation
        ``success`` False (with the integrator's message) if CVODES fails; never raises for a
        failed integration.
    """
    settings = settings or VerificationSettings()
    net = ensemble.network
    integrator, growth, s_idx = _reactor(json.dumps(net.to_dict(), sort_keys=True), float(ensemble.cell_volume))
    params = _model_params(ensemble, model, vmax_fold)
    s0 = (
        float(ensemble.fixed_concentrations[s_idx])
        if settings.glucose0_mmol_per_l is None
        else float(settings.glucose0_mmol_per_l)
    )
    if isinstance(feed, FeedProfile):
        s_in = feed.glucose_mmol_per_l
        rate_at = feed.rate
        breaks = feed.times_h
    elif feed is None:
        s_in, rate_at, breaks = 0.0, (lambda t: 0.0), (0.0,)
    elif callable(feed):
        s_in = settings.feed_glucose_mmol_per_l if feed_glucose_mmol_per_l is None else float(feed_glucose_mmol_per_l)
        rate_at, breaks = feed, (0.0,)
    else:
        raise ValueError(f"feed must be None, a FeedProfile or a callable of time. Got {type(feed).__name__}.")
    times = np.linspace(0.0, settings.t_end_h, settings.n_points)
    n = net.n_metabolites
    scales = np.array([s0 if s0 > 0 else 1.0, settings.biomass0_gdw_per_l, settings.volume0_l])
    unscale = np.concatenate([np.ones(n), [scales[0], scales[1], scales[1], scales[2]]])
    state = np.concatenate([np.ones(n), [s0, settings.biomass0_gdw_per_l, settings.product0_mmol_per_l, settings.volume0_l]]) / unscale
    traj = np.full((times.size, state.size), np.nan)
    traj[0] = state
    feed_t = np.full(times.size, np.nan)
    # segments of constant feed: a new segment starts at every feed break and, for a callable
    # feed, wherever the held rate changes between output intervals
    rates = [float(rate_at(float(t))) for t in times[:-1]]
    cuts = {0.0, float(settings.t_end_h)} | {float(b) for b in breaks if 0.0 < b < settings.t_end_h}
    if not isinstance(feed, FeedProfile):
        cuts |= {float(times[k]) for k in range(1, len(rates)) if rates[k] != rates[k - 1]}
    cuts_sorted = sorted(cuts)
    fed = 0.0
    ok, msg = True, ""
    for a, b in zip(cuts_sorted[:-1], cuts_sorted[1:]):
        F = float(rate_at(a))
        if not math.isfinite(F) or F < 0:
            ok, msg = False, f"feed rate {F!r} L/h at t = {a:.3g} h is not a finite number >= 0"
            break
        inside = [k for k in range(times.size) if a < times[k] < b or (times[k] == b)]
        nodes = [float(times[k]) for k in inside]
        if not nodes or nodes[-1] != b:
            nodes.append(b)
        grid = tuple(round((t - a) / (b - a), 12) for t in nodes)
        p = np.concatenate([[b - a, F, s_in], scales, params])
        try:
            res = np.asarray(integrator(grid)(x0=state, p=p)["xf"])
        except RuntimeError as exc:
            ok, msg = False, f"integration failed between t = {a:.3g} h and {b:.3g} h: {str(exc).splitlines()[0][:160]}"
            break
        if not np.all(np.isfinite(res)):
            ok, msg = False, f"non-finite state between t = {a:.3g} h and {b:.3g} h"
            break
        for col, t in enumerate(nodes):
            k = int(np.searchsorted(times, t))
            if k < times.size and times[k] == t:
                traj[k] = res[:, col]
        state = res[:, -1]
        fed += F * (b - a) * s_in
        for k in range(times.size - 1):
            if a <= times[k] < b:
                feed_t[k] = F
    feed_t[-1] = feed_t[-2] if times.size > 1 else 0.0
    p_mu = np.concatenate([[1.0, 0.0, s_in], scales, params])
    mu = np.array([float(growth(traj[k], p_mu)) if np.all(np.isfinite(traj[k])) else np.nan for k in range(times.size)])
    traj = traj * unscale
    return ReactorSimulation(
        times=times,
        biomass=traj[:, n + 1],
        substrate=traj[:, n],
        product=traj[:, n + 2],
        volume=traj[:, n + 3],
        feed=feed_t,
        growth_rate=mu,
        substrate_fed_mmol=fed,
        success=ok,
        message=msg,
    )


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
        return StrainSteadyState(False, False, nan, nan, nan, nan, nan, False,
                                 f"no steady state reached (Newton from the reference and after {max(relax_hours, default=0):g} h "
                                 f"relaxation; residual {ss.residual:.3g}; {reason})")
    x_ref, xf, K, lk, vm = ensemble.parameters([model])
    E = evaluate_rate_jacobian(net, ss.concentrations[None, :], xf, K, lk, vm * fold[None, :])
    mr = float(np.linalg.eigvals(reduced_jacobian(ensemble, [model], rate_jacobian=E)[0]).real.max())
    v0 = net.fluxes
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
        msg = (f"steady state outside the physiological range [{lo_c:.3g}, {hi_c:.3g}] mM: {len(out)} metabolite(s), "
               f"e.g. {worst[0]} at {worst[1]:.3g} mM")
    return StrainSteadyState(True, stable, mr, float(ratio[g]), float(ratio[p] / ratio[s]), float(ratio[p]), dlnx, kept, msg,
                             x_min, x_max, bool(inside))


@dataclass(frozen=True, eq=False)
class VerificationResult:
    """Strains x models in one reactor mode.

    Attributes
    ----------
    mode : str
        "batch" or "fed-batch".
    strains : tuple of str
        Strain labels (reference first, then designs, then baselines).
    model_ids : tuple of str
    times : ndarray (n_t,)
        h.
    product, biomass, substrate, volume : ndarray (n_strains, n_models, n_t)
        mM, gDW/L, mM, L; NaN where a strain was not applied (design infeasible in that model)
        or the integration failed.
    product_yield : ndarray (n_strains, n_models)
        mol product / mol substrate consumed over the whole run.
    success : ndarray of bool (n_strains, n_models)
        The reactor simulation ran to the end.
    messages : ndarray of str (n_strains, n_models)
    product_mw_g_per_mol : float
    seconds : float
        Wall time of all simulations (s).
    n_simulations : int
    readout_times : ndarray (n_models,)
        Time at which the strains of each model are compared (h): the end of the reference
        strain's batch fermentation, or t_end (see ``VerificationSettings.batch_readout``).
    steady_state : ndarray of object (n_strains, n_models)
        :class:`StrainSteadyState` per strain and model (None where not checked / not applied).
    physiological_range : (float, float) or None
        Concentration range (mM) the steady states were checked against (see
        ``VerificationSettings.viability_concentration_fold``); None when not checked.
    """

    mode: str
    strains: tuple[str, ...]
    model_ids: tuple[str, ...]
    times: np.ndarray
    product: np.ndarray
    biomass: np.ndarray
    substrate: np.ndarray
    volume: np.ndarray
    product_yield: np.ndarray
    success: np.ndarray
    messages: np.ndarray
    product_mw_g_per_mol: float
    seconds: float
    n_simulations: int
    readout_times: np.ndarray | None = None
    steady_state: np.ndarray | None = None
    physiological_range: tuple[float, float] | None = None

    def _at_readout(self, a: np.ndarray) -> np.ndarray:
        t_r = self.readout_times if self.readout_times is not None else np.full(len(self.model_ids), self.times[-1])
        out = np.full(a.shape[:2], np.nan)
        for m, t in enumerate(t_r):
            for s in range(a.shape[0]):
                if np.all(np.isfinite(a[s, m])):
                    out[s, m] = float(np.interp(t, self.times, a[s, m]))
        return out

    @property
    def final_titer(self) -> np.ndarray:
        """Product titer at the end of the run (n_strains, n_models), mM."""
        return self.product[:, :, -1]

    @property
    def titer(self) -> np.ndarray:
        """Product titer at each model's readout time (n_strains, n_models), mM."""
        return self._at_readout(self.product)

    @property
    def biomass_at_readout(self) -> np.ndarray:
        """Biomass at each model's readout time (n_strains, n_models), gDW/L."""
        return self._at_readout(self.biomass)

    @property
    def yield_at_readout(self) -> np.ndarray:
        """Product formed per substrate consumed up to the readout time (n_strains, n_models), mol/mol.

        Batch only (constant volume); a fed-batch is read at its end, where this equals
        :attr:`product_yield`.
        """
        if self.mode != "batch":
            return self.product_yield.copy()
        p, s = self._at_readout(self.product), self._at_readout(self.substrate)
        consumed = self.substrate[:, :, 0] - s
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(consumed > 0, (p - self.product[:, :, 0]) / consumed, np.nan)

    @property
    def titer_gain(self) -> np.ndarray:
        """Titer at readout relative to the reference strain in the same model, minus 1 (fraction)."""
        t = self.titer
        with np.errstate(divide="ignore", invalid="ignore"):
            return t / t[0][None, :] - 1.0

    @property
    def failure(self) -> np.ndarray:
        """Why each strain x model is not a valid comparison ("" when it is), (n_strains, n_models).

        A strain fails in a model when it was not applied there (design infeasible), the
        reactor integration failed, or (when checked) it has no steady state, an unstable one,
        or one outside :attr:`physiological_range`.
        """
        out = np.full(self.success.shape, "", dtype=object)
        for s in range(self.success.shape[0]):
            for m in range(self.success.shape[1]):
                if not self.success[s, m]:
                    out[s, m] = str(self.messages[s, m]) or "simulation failed"
                elif self.steady_state is not None and self.steady_state[s, m] is not None and not self.steady_state[s, m].valid:
                    out[s, m] = self.steady_state[s, m].message
        return out

    @property
    def valid(self) -> np.ndarray:
        """True where the strain ran and (when checked) has a stable steady state (n_strains, n_models)."""
        return self.failure == ""

    def bands(self, quantity: str = "product", quantiles: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and quantile band over models of a time course, per strain.

        Parameters
        ----------
        quantity : str
            "product", "biomass", "substrate" or "volume".
        quantiles : (float, float)
            Lower and upper quantile (fractions).

        Returns
        -------
        mean, low, high : ndarray (n_strains, n_t)
        """
        if quantity not in ("product", "biomass", "substrate", "volume"):
            raise ValueError(f"quantity must be product, biomass, substrate or volume. Got {quantity!r}.")
        a = getattr(self, quantity)
        out = []
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out.append(np.nanmean(a, axis=1))
                out.append(np.nanquantile(a, quantiles[0], axis=1))
                out.append(np.nanquantile(a, quantiles[1], axis=1))
        return out[0], out[1], out[2]

    def to_frame(self):
        """Tidy table: one row per strain x model with titers, yields, biomass, gains and validity."""
        import pandas as pd

        rows = []
        titer, gain, yld, bio = self.titer, self.titer_gain, self.yield_at_readout, self.biomass_at_readout
        failure = self.failure
        t_r = self.readout_times if self.readout_times is not None else np.full(len(self.model_ids), self.times[-1])
        for s, label in enumerate(self.strains):
            for m, mid in enumerate(self.model_ids):
                ss = self.steady_state[s, m] if self.steady_state is not None else None
                rows.append(
                    {
                        "mode": self.mode,
                        "strain": label,
                        "model_id": mid,
                        "readout_time_h": float(t_r[m]),
                        "titer_mM": float(titer[s, m]),
                        "titer_g_per_l": float(titer[s, m]) * self.product_mw_g_per_mol / 1000.0,
                        "titer_gain": float(gain[s, m]),
                        "yield_mol_per_mol": float(yld[s, m]),
                        "biomass_gdw_per_l": float(bio[s, m]),
                        "final_titer_mM": float(self.final_titer[s, m]),
                        "final_biomass_gdw_per_l": float(self.biomass[s, m, -1]),
                        "product_yield_mol_per_mol": float(self.product_yield[s, m]),
                        "steady_state_growth_ratio": ss.growth_ratio if ss is not None else math.nan,
                        "steady_state_yield_ratio": ss.yield_ratio if ss is not None else math.nan,
                        "steady_state_max_real_eigenvalue": ss.max_real_eigenvalue if ss is not None else math.nan,
                        "steady_state_min_concentration_mM": ss.min_concentration if ss is not None else math.nan,
                        "steady_state_max_concentration_mM": ss.max_concentration if ss is not None else math.nan,
                        "steady_state_max_abs_ln_concentration_change": ss.max_abs_log_concentration_change if ss is not None else math.nan,
                        "success": bool(self.success[s, m]),
                        "valid": failure[s, m] == "",
                        "failure": str(failure[s, m]),
                        "message": str(self.messages[s, m]),
                    }
                )
        return pd.DataFrame(rows)

    def compare(self, strain: str, other: str = "reference", growth_kept_fraction: float = 0.8) -> dict:
        """Statistics of ``strain`` against ``other`` over all models, failures counted.

        Titer, yield and biomass are read at each model's readout time. A model counts as a
        win for ``strain`` only when both strains are valid there and ``strain`` is strictly
        better; a model where ``strain`` is invalid (not applied, failed simulation, no stable
        steady state inside the physiological range) counts as a loss, one where only ``other`` is invalid as a win. Ratios
        (mean, standard deviation, min, max) are over the models where both are valid.

        Returns
        -------
        dict
            n_models, n_valid_both, fraction_models_titer_higher / _yield_higher /
            _biomass_higher, titer_ratio / yield_ratio / biomass_ratio statistics
            (strain / other, ratios), and fraction_models_growth_kept (strain biomass >=
            ``growth_kept_fraction`` x other's, failures counted as not kept).
        """
        i, j = self.strains.index(strain), self.strains.index(other)
        valid = self.valid
        n = len(self.model_ids)
        both = valid[i] & valid[j]
        out: dict = {"n_models": n, "n_valid_both": int(both.sum()), "n_invalid": int((~valid[i]).sum())}
        for name, arr in (("titer", self.titer), ("yield", self.yield_at_readout), ("biomass", self.biomass_at_readout)):
            a, b = arr[i], arr[j]
            win = np.where(both, a > b, valid[i] & ~valid[j])
            out[f"fraction_models_{name}_higher"] = float(np.mean(win)) if n else None
            with np.errstate(divide="ignore", invalid="ignore"):
                r = a[both] / b[both]
            r = r[np.isfinite(r)]
            out[f"{name}_ratio"] = (
                {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "median": float(np.median(r)),
                 "max": float(r.max())} if r.size else None
            )
        x = self.biomass_at_readout
        kept = np.where(both, x[i] >= growth_kept_fraction * x[j], valid[i] & ~valid[j])
        out["fraction_models_growth_kept"] = float(np.mean(kept)) if n else None
        return out

    def titer_statistics(self, strain: str, other: str = "reference") -> dict:
        """Titer of ``strain`` relative to ``other`` over the models, under three conventions.

        Per model the ratio r_m = titer(strain) / titer(other) at the readout time. Only models
        where ``other`` is valid enter (the denominator must be a viable strain).

        * ``failures_as_zero``: every such model counts; where ``strain`` is not viable (not
          applied, failed simulation, no stable steady state, steady state outside the
          physiological range) r_m = 0, as the paper counts designs that fail to grow or
          produce.
        * ``valid``: only models where ``strain`` is viable too.
        * ``as_simulated``: every model whose simulation ran, viability ignored (what the
          reactor integrates, including strains without a steady state).

        Returns
        -------
        dict
            For each convention ``mean``, ``median``, ``n`` (ratios); ``wins`` and ``n_models``
            (models where ``strain`` is viable and beats ``other``, or only ``strain`` is
            viable), and ``per_model`` {model_id: {"ratio", "valid", "failure"}}.
        """
        i, j = self.strains.index(strain), self.strains.index(other)
        valid, failure, titer = self.valid, self.failure, self.titer
        with np.errstate(divide="ignore", invalid="ignore"):
            r = titer[i] / titer[j]
        ok_other = valid[j] & np.isfinite(titer[j]) & (titer[j] > 0)

        def _stats(a):
            a = a[np.isfinite(a)]
            return {"mean": float(a.mean()) if a.size else None, "median": float(np.median(a)) if a.size else None,
                    "n": int(a.size)}

        as_zero = np.where(valid[i], r, 0.0)[ok_other]
        win = np.where(valid[i] & valid[j], titer[i] > titer[j], valid[i] & ~valid[j])
        return {
            "failures_as_zero": _stats(as_zero),
            "valid": _stats(r[ok_other & valid[i]]),
            "as_simulated": _stats(r[self.success[i] & self.success[j]]),
            "wins": int(win.sum()),
            "n_models": len(self.model_ids),
            "per_model": {
                mid: {"ratio": float(r[m]), "valid": bool(valid[i, m]), "failure": str(failure[i, m])}
                for m, mid in enumerate(self.model_ids)
            },
        }

    def summary(self, growth_kept_fraction: float = 0.8) -> dict:
        """Per strain: readout titer, yield and biomass over the models, validity and failures.

        Means are over the models where the strain is valid, with ``n_valid`` beside them;
        ``fraction_models_*`` against the reference count failures as losses (see
        :meth:`compare`); ``failures`` lists the reason per failed model.
        """
        out = {}
        titer, yld, bio = self.titer, self.yield_at_readout, self.biomass_at_readout
        gain = self.titer_gain
        valid, failure = self.valid, self.failure

        def _stat(a):
            a = a[np.isfinite(a)]
            return float(a.mean()) if a.size else None

        for s, label in enumerate(self.strains):
            v = valid[s]
            cmp = self.compare(label, "reference", growth_kept_fraction) if label != "reference" else None
            out[label] = {
                "n_models": len(self.model_ids),
                "n_valid": int(v.sum()),
                "n_success": int(self.success[s].sum()),
                "failures": {self.model_ids[m]: str(failure[s, m]) for m in range(len(self.model_ids)) if not v[m]},
                "mean_titer_mM": _stat(titer[s][v]),
                "mean_titer_gain": _stat(gain[s][v & valid[0]]),
                "std_titer_gain": float(np.nanstd(gain[s][v & valid[0]])) if np.any(v & valid[0]) else None,
                "mean_yield_mol_per_mol": _stat(yld[s][v]),
                "mean_biomass_gdw_per_l": _stat(bio[s][v]),
                "mean_final_titer_mM": _stat(self.final_titer[s][v]),
                "fraction_models_growth_kept": cmp["fraction_models_growth_kept"] if cmp else 1.0,
                "vs_reference": cmp,
                "titer_ratio_vs_reference": self.titer_statistics(label, "reference") if label != "reference" else None,
            }
        return out


def _progress(iterable, show: bool, desc: str, total: int | None = None):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def verify_strains(
    ensemble: KineticEnsemble,
    models: Sequence[int],
    strains: Mapping[str, np.ndarray],
    *,
    settings: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    model_ids: Sequence[str] | None = None,
    show_progress: bool = False,
) -> VerificationResult:
    """Simulate every strain in every model (batch when ``feed`` is None, else fed-batch).

    Parameters
    ----------
    ensemble : KineticEnsemble
    models : sequence of int
        Model indices into ``ensemble``.
    strains : mapping of str to ndarray (n_models, n_rxn)
        Vmax fold matrix per strain (row k for ``models[k]``); a row with NaN means the strain
        does not exist in that model (e.g. design infeasible there) and is skipped. The
        reference strain (all ones) is added first if no strain is called "reference".
    settings : VerificationSettings, optional
    feed : FeedProfile or callable, optional
    model_ids : sequence of str, optional
    show_progress : bool

    Returns
    -------
    VerificationResult
    """
    settings = settings or VerificationSettings()
    models = [int(m) for m in models]
    nm, nr = len(models), ensemble.network.n_reactions
    strains = dict(strains)
    if "reference" not in strains:
        strains = {"reference": np.ones((nm, nr)), **strains}
    for label, fold in strains.items():
        if np.shape(fold) != (nm, nr):
            raise ValueError(f"Strain {label!r} needs a Vmax fold matrix of shape {(nm, nr)}. Got {np.shape(fold)}.")
    labels = tuple(strains)
    ns, nt = len(labels), settings.n_points
    arr = {k: np.full((ns, nm, nt), np.nan) for k in ("product", "biomass", "substrate", "volume")}
    yld = np.full((ns, nm), np.nan)
    success = np.zeros((ns, nm), dtype=bool)
    messages = np.full((ns, nm), "", dtype=object)
    times = np.linspace(0.0, settings.t_end_h, nt)
    t0 = time.perf_counter()
    count = 0
    jobs = [(s, m) for s in range(ns) for m in range(nm)]
    mode = "batch" if feed is None else "fed-batch"
    steady = np.full((ns, nm), None, dtype=object)
    phys = None
    if settings.check_steady_state and settings.viability_concentration_fold is not None:
        f = float(settings.viability_concentration_fold)
        x_all = np.asarray(ensemble.concentrations, dtype=float)
        phys = (float(np.min(x_all)) / f, float(np.max(x_all)) * f)
    for s, m in _progress(jobs, show_progress, f"verification ({mode})"):
        fold = np.asarray(strains[labels[s]][m], dtype=float)
        if not np.all(np.isfinite(fold)):
            messages[s, m] = "not applied (design infeasible in this model)"
            continue
        sim = simulate_reactor(ensemble, models[m], vmax_fold=fold, settings=settings, feed=feed)
        count += 1
        for k in arr:
            arr[k][s, m] = getattr(sim, k)
        yld[s, m] = sim.product_yield if sim.success else np.nan
        success[s, m] = sim.success
        messages[s, m] = sim.message
        if settings.check_steady_state:
            steady[s, m] = strain_steady_state(ensemble, models[m], fold, concentration_range=phys)
    readout = np.full(nm, float(settings.t_end_h))
    if mode == "batch" and settings.batch_readout == "reference_end":
        ref = labels.index("reference")
        for m in range(nm):
            sub = arr["substrate"][ref, m]
            done = np.flatnonzero(sub <= settings.glucose_exhausted_fraction * sub[0]) if np.isfinite(sub[0]) else []
            if len(done):
                k = int(done[0])
                # linear interpolation of the crossing between the two output points around it
                if k > 0 and sub[k - 1] != sub[k]:
                    level = settings.glucose_exhausted_fraction * sub[0]
                    readout[m] = float(times[k - 1] + (times[k] - times[k - 1]) * (sub[k - 1] - level) / (sub[k - 1] - sub[k]))
                else:
                    readout[m] = float(times[k])
    return VerificationResult(
        mode=mode,
        strains=labels,
        model_ids=tuple(model_ids) if model_ids is not None else tuple(f"model{m}" for m in models),
        times=times,
        product=arr["product"],
        biomass=arr["biomass"],
        substrate=arr["substrate"],
        volume=arr["volume"],
        product_yield=yld,
        success=success,
        messages=messages,
        product_mw_g_per_mol=settings.product_mw_g_per_mol,
        seconds=time.perf_counter() - t0,
        n_simulations=count,
        readout_times=readout,
        steady_state=steady if settings.check_steady_state else None,
        physiological_range=phys,
    )


@dataclass(frozen=True, eq=False)
class SensitivityResult:
    """Expression sensitivity of one design across models.

    Attributes
    ----------
    design : str
        Design label.
    enzymes : tuple of str
        Member enzymes.
    mean_fold : ndarray (n_enzymes,)
        Mean NRA fold change per member over the models (ratio).
    modes : tuple of str
        "all" (every member perturbed together) then each enzyme alone.
    model_ids : tuple of str
    folds : ndarray (n_modes, n_models, n_draws, n_enzymes)
        Applied fold changes.
    times : ndarray (n_t,)
        h.
    product : ndarray (n_modes, n_models, n_draws, n_t)
        Titer time courses, mM.
    reference_titer : ndarray (n_models,)
        Final titer of the reference strain, mM.
    nominal_titer : ndarray (n_models,)
        Final titer at the mean fold changes, mM.
    success : ndarray of bool (n_modes, n_models, n_draws)
    seconds : float
    """

    design: str
    enzymes: tuple[str, ...]
    mean_fold: np.ndarray
    modes: tuple[str, ...]
    model_ids: tuple[str, ...]
    folds: np.ndarray
    times: np.ndarray
    product: np.ndarray
    reference_titer: np.ndarray
    nominal_titer: np.ndarray
    success: np.ndarray
    seconds: float
    readout_times: np.ndarray | None = None

    @property
    def final_titer(self) -> np.ndarray:
        """Titer at each model's readout time (t_end when none given), (n_modes, n_models, n_draws), mM."""
        if self.readout_times is None:
            return self.product[..., -1]
        out = np.full(self.product.shape[:3], np.nan)
        for m, t in enumerate(self.readout_times):
            for k in range(self.product.shape[0]):
                for d in range(self.product.shape[2]):
                    if np.all(np.isfinite(self.product[k, m, d])):
                        out[k, m, d] = float(np.interp(t, self.times, self.product[k, m, d]))
        return out

    def bands(self, quantiles: tuple[float, float] = (0.05, 0.95)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and quantile band of the titer time course over models x draws, per mode.

        Returns
        -------
        mean, low, high : ndarray (n_modes, n_t), mM
        """
        a = self.product.reshape(self.product.shape[0], -1, self.product.shape[-1])
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (np.nanmean(a, axis=1), np.nanquantile(a, quantiles[0], axis=1), np.nanquantile(a, quantiles[1], axis=1))

    def summary(self) -> dict:
        """Per mode: mean final titer gain over the reference and the fraction of draws above it."""
        ref = self.reference_titer[None, :, None]
        gain = self.final_titer / ref - 1.0
        return {
            mode: {
                "mean_titer_gain": float(np.nanmean(gain[k])) if np.any(np.isfinite(gain[k])) else None,
                "p05_titer_gain": float(np.nanpercentile(gain[k], 5)) if np.any(np.isfinite(gain[k])) else None,
                "fraction_above_reference": float(np.nanmean(gain[k] > 0)) if np.any(np.isfinite(gain[k])) else None,
                "n_success": int(self.success[k].sum()),
            }
            for k, mode in enumerate(self.modes)
        }

    def to_frame(self):
        """One row per mode x model x draw."""
        import pandas as pd

        rows = []
        for k, mode in enumerate(self.modes):
            for m, mid in enumerate(self.model_ids):
                for d in range(self.folds.shape[2]):
                    row = {"design": self.design, "mode": mode, "model_id": mid, "draw": d,
                           "final_titer_mM": float(self.final_titer[k, m, d]),
                           "reference_titer_mM": float(self.reference_titer[m]), "success": bool(self.success[k, m, d])}
                    row.update({f"fold_{e}": float(self.folds[k, m, d, j]) for j, e in enumerate(self.enzymes)})
                    rows.append(row)
        return pd.DataFrame(rows)


def expression_sensitivity(
    ensemble: KineticEnsemble,
    models: Sequence[int],
    design: str,
    enzymes: Sequence[str],
    mean_fold: Sequence[float],
    *,
    settings: SensitivitySettings | None = None,
    verification: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    model_ids: Sequence[str] | None = None,
    reference_titer: np.ndarray | None = None,
    readout_times: np.ndarray | None = None,
    show_progress: bool = False,
) -> SensitivityResult:
    """Perturb a design's mean fold changes uniformly and simulate every model.

    Each draw multiplies the mean fold change f_j by U(1 - a, 1 + a) (``a =
    settings.perturbation``): for mode "all" every member at once, for mode ``e`` only enzyme
    ``e`` while the others stay at their mean. Seeded (``settings.seed``).

    Parameters
    ----------
    ensemble : KineticEnsemble
    models : sequence of int
        Model indices into ``ensemble``.
    design : str
        Label.
    enzymes : sequence of str
        Member enzymes (reaction ids of the network).
    mean_fold : sequence of float
        Mean NRA fold change per member (ratio > 0).
    settings, verification : optional
    feed : optional
        Fed-batch feed (None: batch).
    reference_titer : ndarray (n_models,), optional
        Reference-strain titers at the readout times (mM); simulated when omitted.
    readout_times : ndarray (n_models,), optional
        Time at which each model's titers are read (h), e.g. the batch verification's
        :attr:`VerificationResult.readout_times`; default the end of the run.

    Returns
    -------
    SensitivityResult
    """
    settings = settings or SensitivitySettings()
    verification = verification or VerificationSettings()
    enzymes = tuple(enzymes)
    mean_fold = np.asarray(mean_fold, dtype=float)
    if mean_fold.shape != (len(enzymes),) or np.any(~np.isfinite(mean_fold)) or np.any(mean_fold <= 0):
        raise ValueError(f"mean_fold must hold one positive fold per enzyme {enzymes}. Got {mean_fold!r}.")
    net = ensemble.network
    cols = [net.reaction_index(e) for e in enzymes]
    models = [int(m) for m in models]
    modes = ("all",) + enzymes
    rng = np.random.default_rng(settings.seed)
    a = settings.perturbation
    nm, nd, ne, nt = len(models), settings.n_draws, len(enzymes), verification.n_points
    folds = np.broadcast_to(mean_fold, (len(modes), nm, nd, ne)).copy()
    u = rng.uniform(1 - a, 1 + a, size=(len(modes), nm, nd, ne))
    folds[0] *= u[0]
    for k in range(1, len(modes)):
        folds[k, :, :, k - 1] *= u[k, :, :, k - 1]
    product = np.full((len(modes), nm, nd, nt), np.nan)
    success = np.zeros((len(modes), nm, nd), dtype=bool)
    t0 = time.perf_counter()
    ref = np.full(nm, np.nan) if reference_titer is None else np.asarray(reference_titer, dtype=float)
    nominal = np.full(nm, np.nan)
    times = np.linspace(0.0, verification.t_end_h, nt)
    t_read = np.full(nm, float(verification.t_end_h)) if readout_times is None else np.asarray(readout_times, dtype=float)
    if t_read.shape != (nm,):
        raise ValueError(f"readout_times must hold one time per model ({nm}). Got shape {t_read.shape}.")
    for m, model in enumerate(_progress(models, show_progress, f"sensitivity {design}")):
        if reference_titer is None:
            ref[m] = np.interp(t_read[m], times, simulate_reactor(ensemble, model, settings=verification, feed=feed).product)
        base = np.ones(net.n_reactions)
        base[cols] = mean_fold
        nominal[m] = np.interp(t_read[m], times, simulate_reactor(ensemble, model, vmax_fold=base, settings=verification, feed=feed).product)
        for k in range(len(modes)):
            for d in range(nd):
                fold = np.ones(net.n_reactions)
                fold[cols] = folds[k, m, d]
                sim = simulate_reactor(ensemble, model, vmax_fold=fold, settings=verification, feed=feed)
                product[k, m, d] = sim.product
                success[k, m, d] = sim.success
    return SensitivityResult(
        design=design,
        enzymes=enzymes,
        mean_fold=mean_fold,
        modes=modes,
        model_ids=tuple(model_ids) if model_ids is not None else tuple(f"model{m}" for m in models),
        folds=folds,
        times=times,
        product=product,
        reference_titer=ref,
        nominal_titer=nominal,
        success=success,
        seconds=time.perf_counter() - t0,
        readout_times=t_read,
    )
