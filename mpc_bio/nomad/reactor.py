"""The kinetic batch / fed-batch reactor: one kinetic model of the ensemble growing in a medium.

Well mixed, volume V in L; all rates from the kinetic model (units mM, gDW/L, h):

    dz/dt = S v(x, s) / V_cell / x_ref                 intracellular, z = x / x_ref
    ds/dt = S_fixed[s] v X + F/V (s_in - s)             substrate in the medium (mM)
    dX/dt = v_growth X - F/V X                          biomass (gDW/L)
    dP/dt = v_product X - F/V P                         product titer (mM)
    dV/dt = F                                           volume (L)

The substrate's boundary metabolite (:func:`substrate_species`) follows the medium; the other
boundary metabolites stay fixed (large medium). With F = 0 this is the batch reactor of the
ensemble screening (:func:`simulate_batch`); the feed F(t) (L/h) is piecewise constant, a
:class:`~mpc_bio.feed.FeedProfile` or any callable of time held over each output interval
(:func:`simulate_reactor`), so optimised feeds from the control layer plug in directly.

The cell's rates in its medium (:func:`medium_rates`) and the parameter vector of one model
(:func:`model_parameters`) are the building blocks the co-design stage rewrites in amounts as a
control model (:func:`mpc_bio.codesign.model.kinetic_control_model`).

States are integrated scaled (z = x / x_ref, s / s0, X / X0, P / X0, V / V0, time over each
constant-feed segment scaled to [0, 1]) so every state is O(1) for CVODES.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import casadi as ca
import numpy as np

from mpc_bio.feed import FeedProfile
from mpc_bio.interrupts import check_interrupt
from mpc_bio.nomad.ensemble import KineticEnsemble
from mpc_bio.nomad.kinetics import rate_expressions
from mpc_bio.nomad.network import KineticNetwork
from mpc_bio.nomad.nra_settings import VerificationSettings

__all__ = [
    "BiomassGain",
    "ReactorSimulation",
    "batch_biomass_gain",
    "medium_rates",
    "model_parameters",
    "simulate_batch",
    "simulate_reactor",
    "substrate_species",
    "vmax_fold_from_log_changes",
]

_OPTS = {"abstol": 1e-9, "reltol": 1e-7, "max_num_steps": 50000, "disable_internal_warnings": True}
_JIT_DIR: list[str] = []


def _jit_options() -> dict:
    """CVODES options of ``compiled=True``: the right-hand side and its Jacobian compiled to C, the
    objects in a temporary folder of this process (removed when it exits)."""
    if not _JIT_DIR:
        import atexit
        import tempfile

        folder = tempfile.mkdtemp(prefix="mpc_bio_jit_")
        atexit.register(_remove_jit_dir, folder)
        _JIT_DIR.append(folder)
    return {
        "jit": True,
        "compiler": "shell",
        "jit_name": f"mpc_bio_batch_{os.getpid()}_",
        "jit_options": {"flags": ["-O1"], "verbose": False, "directory": _JIT_DIR[0] + os.sep},
        "jit_cleanup": True,
    }


def _remove_jit_dir(folder: str) -> None:
    """Release the compiled integrators (CasADi deletes their files) and remove their folder."""
    import gc
    import shutil

    _reactor.cache_clear()
    gc.collect()
    shutil.rmtree(folder, ignore_errors=True)


def _compiled_integrator(name: str, dae: dict, grid: list[float]):
    """A CVODES integrator with its functions compiled to C; the C source CasADi leaves in the working directory is removed."""
    opts = _jit_options()
    try:
        return ca.integrator(name, "cvodes", dae, 0.0, grid, {**_OPTS, **opts})
    finally:
        for leftover in Path.cwd().glob(f"{opts['jit_name']}*.c"):
            leftover.unlink(missing_ok=True)


@dataclass(frozen=True, eq=False)
class ReactorSimulation:
    """Time course of one strain (one model, one set of Vmax folds) in the reactor, batch or fed.

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
    concentrations : ndarray (n_t, n_met)
        Intracellular concentrations, mM.
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
    concentrations: np.ndarray
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


def vmax_fold_from_log_changes(network: KineticNetwork, enzyme_ids: Sequence[str], log_changes: np.ndarray) -> np.ndarray:
    """Vmax multipliers (n_rxn,) from enzyme log changes (enzyme j scales reaction ``enzyme_ids[j]``)."""
    fold = np.ones(network.n_reactions)
    d = np.asarray(log_changes, dtype=float)
    for j, e in enumerate(enzyme_ids):
        if d[j] != 0.0:
            fold[network.reaction_index(e)] = math.exp(d[j])
    return fold


def model_parameters(ensemble: KineticEnsemble, model: int, vmax_fold=None) -> np.ndarray:
    """Parameter vector of one model: x_ref (mM), x_fixed (mM), K (mM), ln Keq, Vmax x ``vmax_fold``.

    The layout :func:`medium_rates` reads; ``vmax_fold`` (n_rxn,) multiplies Vmax (the design).
    """
    x, xf, K, lk, vm = (np.asarray(a)[0] if np.ndim(a) == 2 else np.asarray(a) for a in ensemble.parameters([model]))
    if vmax_fold is not None:
        vm = vm * np.asarray(vmax_fold, dtype=float)
    return np.concatenate([x, xf, K, lk, vm])


def medium_rates(network: KineticNetwork, z, s_medium, params, s_idx: int | None = None):
    """Symbolic rates (n_rxn) of one model whose substrate boundary metabolite is at ``s_medium``.

    Parameters
    ----------
    network : KineticNetwork
    z : casadi SX (n_met,)
        Intracellular concentrations scaled by the reference, x / x_ref (-).
    s_medium : casadi SX scalar
        Medium concentration of the substrate's boundary metabolite (mM).
    params : casadi SX (n_par,)
        The :func:`model_parameters` layout.
    s_idx : int, optional
        :func:`substrate_species` of ``network`` (computed when omitted).

    Returns
    -------
    (v, x_ref) : casadi SX
        Rates (mmol/gDW/h) and the reference concentrations (mM) sliced from ``params``.
    """
    n, nf, ns, nr = network.n_metabolites, network.n_fixed, network.n_slots, network.n_reactions
    s_idx = substrate_species(network) if s_idx is None else s_idx
    x_ref, xf = params[:n], params[n : n + nf]
    K, lk, vm = params[n + nf : n + nf + ns], params[n + nf + ns : n + nf + ns + nr], params[n + nf + ns + nr :]
    xf_r = ca.vertcat(*[s_medium if k == s_idx else xf[k] for k in range(nf)])
    return rate_expressions(network, x_ref * z, xf_r, K, lk, vm), x_ref


@lru_cache(maxsize=16)
def _reactor(network_json: str, cell_volume: float, fed: bool = True, compiled: bool = False):
    """CVODES integrators (cached per output grid), the growth rate and the substrate species.

    With ``compiled`` the integrators' right-hand side and Jacobian are compiled to C (CasADi JIT,
    :func:`_jit_options`); without a working C compiler they are interpreted, with a warning.

    States are scaled: s = s_sc s~, X = X_sc X~, P = X_sc P~, V = V_sc V~, time over [0, 1]
    by the segment length T. With ``fed`` False the feed is zero by construction: the volume
    state and the dilution terms are left out (the batch of the ensemble screening).
    """
    net = KineticNetwork.from_dict(json.loads(network_json))
    s_idx = substrate_species(net)
    g = net.reaction_index(net.growth_reaction)
    pr = net.reaction_index(net.product_reaction)
    T, s_sc, X_sc = ca.SX.sym("T"), ca.SX.sym("s_sc"), ca.SX.sym("X_sc")
    q = ca.SX.sym("model", net.n_metabolites + net.n_fixed + net.n_slots + 2 * net.n_reactions)
    z = ca.SX.sym("z", net.n_metabolites)
    s_t, X_t, P_t = ca.SX.sym("s"), ca.SX.sym("X"), ca.SX.sym("P")
    s_med = s_sc * s_t
    v, x_ref = medium_rates(net, z, s_med, q, s_idx)
    dz = T * (ca.DM(net.stoichiometry) @ v) / cell_volume / x_ref
    uptake = ca.DM(net.fixed_stoichiometry[s_idx]).T @ v
    if fed:
        F, s_in, V_sc, V_t = ca.SX.sym("F"), ca.SX.sym("s_in"), ca.SX.sym("V_sc"), ca.SX.sym("V")
        D = F / (V_sc * V_t)
        p = ca.vertcat(T, F, s_in, s_sc, X_sc, V_sc, q)
        state = ca.vertcat(z, s_t, X_t, P_t, V_t)
        rhs = ca.vertcat(
            dz,
            T * (uptake * X_sc * X_t + D * (s_in - s_med)) / s_sc,
            T * (v[g] * X_t - D * X_t),
            T * (v[pr] * X_t - D * P_t),
            T * F / V_sc,
        )
    else:
        p = ca.vertcat(T, s_sc, X_sc, q)
        state = ca.vertcat(z, s_t, X_t, P_t)
        rhs = ca.vertcat(dz, T * uptake * X_sc * X_t / s_sc, T * v[g] * X_t, T * v[pr] * X_t)
    dae = {"x": state, "p": p, "ode": rhs}
    growth = ca.Function("growth", [state, p], [v[g]])

    @lru_cache(maxsize=32)
    def integrator(grid: tuple[float, ...]):
        """CVODES over scaled time [0, 1] with outputs at ``grid`` (fractions of the segment)."""
        name = "reactor" if fed else "batch"
        if compiled:
            try:
                return _compiled_integrator(name, dae, list(grid))
            except RuntimeError as exc:
                warnings.warn(
                    f"The batch reactor was not compiled to C ({str(exc).splitlines()[-1][:160]}); it runs interpreted.", stacklevel=2
                )
        return ca.integrator(name, "cvodes", dae, 0.0, list(grid), _OPTS)

    return integrator, growth, s_idx


def _build(ensemble: KineticEnsemble, fed: bool = True, compiled: bool = False):
    return _reactor(json.dumps(ensemble.network.to_dict(), sort_keys=True), float(ensemble.cell_volume), fed, compiled)


def _feed_law(feed, settings: VerificationSettings, feed_glucose: float | None):
    """(s_in in mM, rate_at(t) in L/h, feed break times in h) of a feed argument."""
    s_in = settings.feed_glucose if feed_glucose is None else float(feed_glucose)
    if isinstance(feed, FeedProfile):
        return s_in, feed.rate, feed.times
    if feed is None:
        return 0.0, (lambda t: 0.0), (0.0,)
    if callable(feed):
        return s_in, feed, (0.0,)
    raise ValueError(f"The 'feed' parameter must be None, a FeedProfile or a callable of time. Got {type(feed).__name__}.")


def simulate_reactor(
    ensemble: KineticEnsemble,
    model: int,
    *,
    vmax_fold: np.ndarray | None = None,
    settings: VerificationSettings | None = None,
    feed: FeedProfile | Callable[[float], float] | None = None,
    feed_glucose: float | None = None,
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
        Duration, output grid, initial conditions, feed glucose.
    feed : FeedProfile or callable or None
        None: batch. A :class:`~mpc_bio.feed.FeedProfile`, or a callable t (h) -> F (L/h) held
        constant over each output interval (zero-order hold at the interval start).
    feed_glucose : float, optional
        Substrate concentration of the feed (mM); default ``settings.feed_glucose``.

    Returns
    -------
    ReactorSimulation
        ``success`` False (with the integrator's message) if CVODES fails; never raises for a
        failed integration.
    """
    settings = settings or VerificationSettings()
    net = ensemble.network
    integrator, growth, s_idx = _build(ensemble)
    params = model_parameters(ensemble, model, vmax_fold)
    s0 = float(ensemble.fixed_concentrations[s_idx]) if settings.glucose0 is None else float(settings.glucose0)
    s_in, rate_at, breaks = _feed_law(feed, settings, feed_glucose)
    times = np.linspace(0.0, settings.batch_time, settings.n_points)
    n = net.n_metabolites
    scales = np.array([s0 if s0 > 0 else 1.0, settings.biomass0, settings.volume0])
    unscale = np.concatenate([np.ones(n), [scales[0], scales[1], scales[1], scales[2]]])
    state = np.concatenate([np.ones(n), [s0, settings.biomass0, settings.product0, settings.volume0]]) / unscale
    traj = np.full((times.size, state.size), np.nan)
    traj[0] = state
    feed_t = np.full(times.size, np.nan)
    # segments of constant feed: a new segment starts at every feed break and, for a callable
    # feed, wherever the held rate changes between output intervals
    rates = [float(rate_at(float(t))) for t in times[:-1]]
    cuts = {0.0, float(settings.batch_time)} | {float(b) for b in breaks if 0.0 < b < settings.batch_time}
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
            check_interrupt()  # CVODES turns Ctrl-C / SIGTERM into this error: stop, not a failed model
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
    x_ref = params[:n]
    return ReactorSimulation(
        times=times,
        biomass=traj[:, n + 1],
        substrate=traj[:, n],
        product=traj[:, n + 2],
        volume=traj[:, n + 3],
        concentrations=traj[:, :n] * x_ref,
        feed=feed_t,
        growth_rate=mu,
        substrate_fed_mmol=fed,
        success=ok,
        message=msg,
    )


def simulate_batch(
    ensemble: KineticEnsemble,
    i: int,
    duration: float,
    biomass0: float = 0.05,
    vmax_fold=None,
    initial_substrate: float | None = None,
    n_points: int = 25,
    x0: np.ndarray | None = None,
    compiled: bool = False,
) -> ReactorSimulation:
    """The reactor without feed, with model ``i`` (Vmax multiplied by ``vmax_fold``), one CVODES run.

    With F = 0 the volume stays at 1 L and the dilution terms vanish, so they are left out of
    the integrated states (the batch of the ensemble screening).

    Parameters
    ----------
    ensemble : KineticEnsemble
    i : int
        Model index.
    duration : float
        h.
    biomass0 : float
        gDW/L.
    vmax_fold : array (n_rxn,), optional
        Multiplies Vmax (enzyme activity fold changes).
    initial_substrate : float, optional
        mM; default the reference concentration of the substrate's boundary metabolite.
    n_points : int
        Output times, evenly spaced over [0, duration].
    x0 : array, optional
        Initial intracellular concentrations (mM); default the reference state.
    compiled : bool
        Right-hand side and Jacobian compiled to C (the same integration, about twice as fast
        after a compilation of a few seconds per process and output grid).

    Returns
    -------
    ReactorSimulation
        Constant volume, zero feed; ``success`` False (with the integrator's message) if CVODES
        fails.
    """
    integrator, growth, s_idx = _build(ensemble, fed=False, compiled=compiled)
    net = ensemble.network
    x_ref = ensemble.concentrations[i]
    s0 = float(ensemble.fixed_concentrations[s_idx] if initial_substrate is None else initial_substrate)
    if s0 <= 0 or biomass0 <= 0:
        raise ValueError(f"simulate_batch needs a positive initial substrate and biomass; got {s0!r} mM and {biomass0!r} gDW/L.")
    params = model_parameters(ensemble, i, vmax_fold)
    p = np.concatenate([[duration, s0, biomass0], params])
    z0 = np.ones(net.n_metabolites) if x0 is None else np.asarray(x0) / x_ref
    state0 = np.concatenate([z0, [1.0, 1.0, 0.0]])
    times = np.linspace(0.0, duration, n_points)
    try:
        grid = tuple(np.linspace(0.0, 1.0, n_points)[1:].tolist())
        traj = np.hstack([state0[:, None], np.asarray(integrator(grid)(x0=state0, p=p)["xf"])])
        ok, msg = bool(np.all(np.isfinite(traj))), ""
    except RuntimeError as exc:
        check_interrupt()  # CVODES turns Ctrl-C / SIGTERM into this error: stop, not a failed model
        traj = np.full((state0.size, n_points), np.nan)
        ok, msg = False, str(exc).splitlines()[0][:200]
    n = net.n_metabolites
    mu = np.array([float(growth(traj[:, k], p)) if ok else np.nan for k in range(n_points)])
    return ReactorSimulation(
        times=times,
        biomass=traj[n + 1] * biomass0,
        substrate=traj[n] * s0,
        product=traj[n + 2] * biomass0,
        volume=np.ones(n_points),
        concentrations=(traj[:n] * x_ref[:, None]).T,
        feed=np.zeros(n_points),
        growth_rate=mu,
        substrate_fed_mmol=0.0,
        success=ok,
        message=msg,
    )


@dataclass(frozen=True)
class BiomassGain:
    """Biomass produced in a batch run that may stop once it reaches a target (:func:`batch_biomass_gain`).

    Attributes
    ----------
    gain : float
        Biomass produced, X(t) - X(0), at the time the run stopped (gDW/L); 0 when the integration failed.
    time : float
        h: the check time at which ``gain`` reached the target, else the run's duration.
    reached : bool
        The run stopped early because ``gain`` reached the target.
    success : bool
    message : str
        The integrator's message when it failed.
    """

    gain: float
    time: float
    reached: bool
    success: bool
    message: str = ""


def batch_biomass_gain(
    ensemble: KineticEnsemble,
    i: int,
    duration: float,
    biomass0: float,
    *,
    stop_gain: float | None = None,
    check_times: Sequence[float] = (),
    vmax_fold: np.ndarray | None = None,
    initial_substrate: float | None = None,
    compiled: bool = False,
) -> BiomassGain:
    """Biomass produced by model ``i`` (Vmax x ``vmax_fold``) in the batch of :func:`simulate_batch`,
    stopping at the first of ``check_times`` at which it reaches ``stop_gain``.

    Growth is ``Vmax prod x/(K + x) >= 0`` (:mod:`mpc_bio.nomad.kinetics`), so the biomass never
    falls and a gain reached at a check time is a lower bound of the gain at ``duration``: a
    threshold on the final gain is decided there, before the stiff stretch after the substrate
    runs out (most of the integrator's steps). CVODES restarts at each check time; without check
    times this is one run over ``duration``, the same integration as ``simulate_batch(...,
    n_points=2)``.

    Parameters
    ----------
    ensemble : KineticEnsemble
    i : int
        Model index.
    duration : float
        h.
    biomass0 : float
        Inoculum, gDW/L.
    stop_gain : float, optional
        Biomass produced (gDW/L) at which the run stops; None: run to ``duration``.
    check_times : sequence of float
        Times (h) at which the gain is compared with ``stop_gain``; those outside (0, duration) are ignored.
    vmax_fold : array (n_rxn,), optional
        Multiplies Vmax.
    initial_substrate : float, optional
        mM; default the reference concentration of the substrate's boundary metabolite.
    compiled : bool
        As in :func:`simulate_batch`.

    Returns
    -------
    BiomassGain
    """
    integrator, _, s_idx = _build(ensemble, fed=False, compiled=compiled)
    s0 = float(ensemble.fixed_concentrations[s_idx] if initial_substrate is None else initial_substrate)
    if s0 <= 0 or biomass0 <= 0:
        raise ValueError(f"batch_biomass_gain needs a positive initial substrate and biomass; got {s0!r} mM and {biomass0!r} gDW/L.")
    duration = float(duration)
    n = ensemble.network.n_metabolites
    checks = sorted({float(t) for t in check_times if 0.0 < float(t) < duration}) if stop_gain is not None else []
    p = np.concatenate([[duration, s0, biomass0], model_parameters(ensemble, i, vmax_fold)])
    state = np.concatenate([np.ones(n), [1.0, 1.0, 0.0]])
    one = integrator((1.0,))
    a = 0.0
    for b in checks + [duration]:
        p[0] = b - a
        try:
            state = np.asarray(one(x0=state, p=p)["xf"]).ravel()
        except RuntimeError as exc:
            check_interrupt()  # CVODES turns Ctrl-C / SIGTERM into this error: stop, not a failed model
            return BiomassGain(0.0, b, False, False, f"integration failed before t = {b:.4g} h: {str(exc).splitlines()[0][:160]}")
        if not np.all(np.isfinite(state)):
            return BiomassGain(0.0, b, False, False, f"non-finite state at t = {b:.4g} h")
        gain = state[n + 1] * biomass0 - biomass0  # as simulate_batch's biomass[-1] - biomass[0]
        if stop_gain is not None and b < duration and gain >= stop_gain:
            return BiomassGain(float(gain), b, True, True)
        a = b
    return BiomassGain(float(gain), duration, False, True)
