"""The surrogate network itself in do-mpc's feed MPC: per-point Taylor models re-linearised until converged.

Design (a) of the network in the MPC loop ("real-time" mode, the pattern of l4casadi's ``RealTimeL4CasADi``):
the network is not part of the NLP. At every collocation point of the horizon the NLP sees a
first- or second-order Taylor model of the network around a linearisation point,

    v(q) ~ v(q_j) + J(q_j) (q - q_j) [+ (q - q_j)^T H(q_j) (q - q_j) / 2],

whose coefficients are do-mpc time-varying parameters. One batched torch call
(:class:`mpc_bio.embed.batched.BatchedNetwork`) computes all coefficients along the previous
solution; the NLP is solved; the coefficients are recomputed along the new solution, and so on
until the uptakes at the collocation points move less than ``q_tol``, or the models match the
network's values and Jacobians at the solution to ``model_tol`` (SQP-style re-linearisation).

do-mpc's time-varying parameters are per interval, while the network is evaluated at the d
collocation points of each interval. The model therefore carries a clock state ``t_clock``
(dt_clock/dt = 1, integrated exactly by the collocation) and the interval's start time as a
parameter; the Taylor models of the d points are blended with the Lagrange polynomials of the
Radau points in the local time s = (t_clock - t_start) / t_step, which are exactly 1 at their own
point and 0 at the others. Each collocation point thus sees its own Taylor model, and at the
converged fixed point (q_j equal to the solution's uptakes) the NLP's constraints and their
Jacobians equal those of the NLP with the network embedded: the converged step is a KKT point of
the native-graph MPC, up to ``q_tol`` and IPOPT's tolerance.

Globalisation: far from the linearisation point a Taylor model of a pFBA surrogate is poor (the
network has sharp regime changes: O2- vs glucose-limited growth, overflow), and an undamped
iteration jumps between regimes. The NLP therefore carries a proximal state ``prox`` whose rate
is rho sum_j L_j(s) ||(q - q_j) / q_scale||^2 and whose final value is added to the objective:
zero with zero gradient at the fixed point, so the converged step is unchanged; rho adapts to the
models' prediction error along the iteration (:meth:`NetworkMPC._relinearise`).

What is measured (``benchmarks/l4casadi_designs.py``): from a cold start the iteration converges
to the native-graph step (same feed and objective to IPOPT's tolerance, tests/control/
test_taylor_mpc.py), but after a shift, when the plan has to move far and the uptakes of some
collocation points cross a regime change, the re-linearisations often do not converge within
``max_relin`` and the step falls back to the shifted plan. The batched collocation NLP
(:mod:`mpc_bio.control.batched_nlp`), which evaluates the network itself, has no such failure.

The same builder with ``flux="native"`` embeds the native CasADi graph of the network instead
(SX or MX), on the same NLP (same states incl. the clock and the proximal state, objective,
constraints, warm start): the reference the Taylor design is measured against.

The problem is the one of :mod:`mpc_bio.control.mpc` (economic objective scored at the end of the
batch, feed-move penalty, bounds, soft volume/glucose/acetate limits with a backoff); see
:func:`build_network_mpc`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.control.settings import BatchProblem, ControlError, MPCSettings, ReactorRoles

__all__ = [
    "SplitFedBatch",
    "split_fedbatch",
    "NetworkMPC",
    "NetworkStepRecord",
    "build_network_mpc",
    "radau_times",
]


@dataclass(frozen=True, eq=False)
class SplitFedBatch:
    """The fed-batch right-hand side with the network's outputs as an input.

    Attributes
    ----------
    uptakes : casadi.Function
        ``(x[n_x], p[n_p]) -> q[k]``: the network's inputs (uptakes, mmol/gDW/h) at a state.
    rhs : casadi.Function
        ``(x, F, p, v[r]) -> dx/dt[n_x]`` given the network's outputs v (mmol/gDW/h, growth 1/h);
        states in the units of ``state_names``, feed F in L/h, time in h.
    cell : mpc_bio.process.CellFluxModel
        The embedded network (native graph) that ``v = cell.function(q)`` stands for.
    state_names, param_names : tuple of str
    param_values : ndarray
        Nominal parameters (the glucose Vmax, mmol/gDW/h).
    roles : ReactorRoles
    output_ids : tuple of str
        Reaction id of each entry of v.
    """

    uptakes: ca.Function
    rhs: ca.Function
    cell: object
    state_names: tuple[str, ...]
    param_names: tuple[str, ...]
    param_values: np.ndarray
    roles: ReactorRoles
    output_ids: tuple[str, ...]

    @property
    def n_x(self) -> int:
        return len(self.state_names)

    @property
    def n_q(self) -> int:
        return int(self.uptakes.size1_out(0))

    @property
    def n_v(self) -> int:
        return len(self.output_ids)

    def native_rhs(self, symbolic: str = "SX") -> ca.Function:
        """``(x, F, p) -> dx/dt`` with the native network embedded (the full model)."""
        sym = ca.SX if symbolic == "SX" else ca.MX
        x, F, p = sym.sym("x", self.n_x), sym.sym("F"), sym.sym("p", len(self.param_names))
        v = self.cell.function(self.uptakes(x, p))
        return ca.Function("rhs_native", [x, F, p], [self.rhs(x, F, p, v)], ["x", "F", "p"], ["dxdt"])


class _FluxPlaceholder:
    """A cell model whose flux function returns a free symbol (records the uptakes it was given)."""

    def __init__(self, cell, v):
        self._cell, self._v, self.q = cell, v, None
        self.growth_id = cell.growth_id

    def function(self, q):
        self.q = q
        return self._v

    def input_index(self, name):
        return self._cell.input_index(name)

    def output_index(self, rid):
        return self._cell.output_index(rid)


def split_fedbatch(reactor, cell) -> SplitFedBatch:
    """The fed-batch model of :mod:`mpc_bio.process.model` split at the network.

    Parameters
    ----------
    reactor : mpc_bio.process.FedBatchSettings
        Reactor, products and kinetics (fixed oxygen uptake or kLa transfer).
    cell : mpc_bio.process.CellFluxModel
        The embedded network (SX-capable, e.g. ``embed_cell_model(surrogate, reactor)``); its
        ``output_ids`` are the entries of v.

    Returns
    -------
    SplitFedBatch
        With the glucose Vmax as the parameter ``vmax_glc``.
    """
    from mpc_bio.control.process_adapter import process_roles
    from mpc_bio.process.model import _expressions

    if cell.symbolic != "SX":
        raise ControlError(
            f"split_fedbatch needs an SX-capable cell model (the native backend); got a {cell.backend} model "
            f"callable with {cell.symbolic} only."
        )
    nx, r = len(reactor.state_names), len(cell.output_ids)
    x, F, p, v = ca.SX.sym("x", nx), ca.SX.sym("F"), ca.SX.sym("p", 1), ca.SX.sym("v", r)
    ph = _FluxPlaceholder(cell, v)
    dx, _ = _expressions(reactor, ph, x, F, p[0])
    if ph.q is None:
        raise ControlError("The fed-batch model did not call the cell model; cannot split it at the network.")
    return SplitFedBatch(
        uptakes=ca.Function("uptakes", [x, p], [ph.q], ["x", "p"], ["q"]),
        rhs=ca.Function("rhs_split", [x, F, p, v], [dx], ["x", "F", "p", "v"], ["dxdt"]),
        cell=cell,
        state_names=tuple(reactor.state_names),
        param_names=("vmax_glc",),
        param_values=np.array([reactor.kinetics.glucose_vmax], dtype=float),
        roles=process_roles(reactor),
        output_ids=tuple(cell.output_ids),
    )


def radau_times(deg: int) -> np.ndarray:
    """The Radau collocation points tau_1..tau_d in (0, 1] (do-mpc's, tau_d = 1)."""
    return np.array(ca.collocation_points(int(deg), "radau"), dtype=float)


def _lagrange(s, tau: np.ndarray) -> list:
    """Lagrange basis polynomials of the nodes ``tau`` at s (symbolic or numeric)."""
    out = []
    for j, tj in enumerate(tau):
        L = 1.0
        for i, ti in enumerate(tau):
            if i != j:
                L = L * (s - ti) / (tj - ti)
        out.append(L)
    return out


def _n_coef(k: int, r: int, order: int) -> int:
    return k + r + r * k + (r * k * (k + 1) // 2 if order == 2 else 0)


def _taylor_expr(q, c, k: int, r: int, order: int):
    """Taylor model v(q) of one point from its coefficient vector c = [q_j, v_j, J_j (row-major), H_j pairs]."""
    qj = c[0:k]
    vj = c[k : k + r]
    J = ca.reshape(c[k + r : k + r + r * k], k, r).T
    d = q - qj
    v = vj + ca.mtimes(J, d)
    if order == 2:
        off = k + r + r * k
        for a, b in zip(*np.triu_indices(k)):
            w = 0.5 if a == b else 1.0
            v = v + w * c[off : off + r] * d[int(a)] * d[int(b)]
            off += r
    return v


def _pack_coef(coef, order: int) -> np.ndarray:
    """Coefficient rows (n, n_coef) from :class:`TaylorCoefficients` in the layout of :func:`_taylor_expr`."""
    n, r, k = coef.jacobians.shape
    parts = [coef.points, coef.values, coef.jacobians.reshape(n, r * k)]
    if order == 2:
        iu = np.triu_indices(k)
        parts.append(np.concatenate([coef.hessians[:, :, a, b] for a, b in zip(*iu)], axis=1))
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class NetworkStepRecord:
    """What one MPC step did.

    Attributes
    ----------
    time : float
        Time of the step [h].
    feed : float
        Feed applied until the next step [L/h].
    status : str
        IPOPT return status of the last solve.
    success : bool
        Whether the last solve succeeded (and, for the Taylor design, the re-linearisation converged).
    iterations : int
        IPOPT iterations, summed over the step's solves.
    relinearisations : int
        Batched torch calls in the step: Taylor coefficient updates (design a) or network
        evaluations inside IPOPT (design b); 0 for the native graph.
    solves : int
        NLP solves in the step.
    q_change : float
        Largest change of an uptake at a collocation point in the step's last solve [mmol/gDW/h]
        (the convergence measure of the re-linearisation; NaN for the native graph).
    wall_time : float
        Wall time of the step (Taylor coefficients, solves, bookkeeping) [s].
    cpu_time : float
        CPU time of the process over the step [s] (all threads).
    network_time : float
        Wall time of the batched torch calls in the step [s].
    warm : bool
        Whether the step started from the shifted previous solution.
    fallback : str
        ``""``, ``"shifted_plan"`` or ``"safe_feed"`` (as :class:`mpc_bio.control.FeedMPC`).
    predicted_objective : float
        End-of-horizon objective of the solution.
    """

    time: float
    feed: float
    status: str
    success: bool
    iterations: int
    relinearisations: int
    solves: int
    q_change: float
    wall_time: float
    cpu_time: float
    network_time: float
    warm: bool
    fallback: str
    predicted_objective: float


class NetworkMPC:
    """do-mpc feed MPC on a split fed-batch model, the network embedded natively or as Taylor models.

    Build it with :func:`build_network_mpc`; call :meth:`reset` at the start of a batch and
    :meth:`step` at every sample.

    Attributes
    ----------
    mpc : do_mpc.controller.MPC
    records : list of NetworkStepRecord
    flux : str
        ``"native"`` or ``"taylor"``.
    """

    def __init__(self, mpc, split: SplitFedBatch, problem: BatchProblem, settings: MPCSettings, *, flux, network,
                 order, q_tol, max_relin, x_scale, rho0=1.0, model_tol=(1e-6, 1e-4)):
        self.mpc = mpc
        self.split = split
        self.problem = problem
        self.settings = settings
        self.flux = flux
        self.network = network
        self.order = order
        self.q_tol = float(q_tol)
        self.max_relin = int(max_relin)
        self.rho0 = float(rho0)
        self._rho = float(rho0)
        self.rho_min, self.rho_max = 1e-3, 1e2
        self.err_grow, self.err_shrink = 0.05, 0.005
        self.model_tol = tuple(float(t) for t in model_tol)
        self.records: list[NetworkStepRecord] = []
        self._tau = radau_times(settings.collocation_deg)
        self._x_scale = np.ones(split.n_x + 2) if x_scale is None else np.r_[np.asarray(x_scale, float), 1.0, 1.0]
        self._p_now = split.param_values.copy()
        self._u_prev = 0.0
        self._plan = None
        self._plan_time = 0.0
        self._solved = False
        self._S_cold = None
        self._S_warm = None
        self._S_relin = None  # re-solves after a re-linearisation: a smaller initial barrier
        self._q_lin = None  # (N * d, k) linearisation points of the Taylor design
        N, d = settings.n_horizon, settings.collocation_deg
        sym = ca.SX
        X = sym.sym("X", split.n_x, N * d)
        P = sym.sym("p", len(split.param_names))
        self._uptakes_map = ca.Function("q_all", [X, P], [split.uptakes.map(N * d)(X, ca.repmat(P, 1, N * d))])
        self._integ = None

    # ---------------------------------------------------------------- helpers
    @property
    def failures(self) -> int:
        """Number of steps whose solve failed (and used the fallback)."""
        return sum(1 for r in self.records if not r.success)

    def _stage_times(self, t0: float) -> np.ndarray:
        return t0 + self.settings.t_step * np.arange(self.settings.n_horizon + 1)

    def _set_parameters(self, x_hat: np.ndarray, t0: float) -> None:
        mpc = self.mpc
        mpc.opt_p_num["_x0"] = np.r_[x_hat, t0, 0.0]
        mpc.opt_p_num["_u_prev"] = self._u_prev
        mpc.opt_p_num["_p", 0] = self._p_now
        for k, tk in enumerate(self._stage_times(t0)):
            mpc.opt_p_num["_tvp", k, "in_batch"] = 1.0 if tk < self.problem.batch_time - 1e-9 else 0.0
            mpc.opt_p_num["_tvp", k, "t_start"] = tk
            mpc.opt_p_num["_tvp", k, "rho"] = 0.0

    def _collocation_states(self) -> np.ndarray:
        """States (n_x, N d) at the collocation points of the current ``opt_x_num`` (unscaled, clock dropped)."""
        xs = self.mpc.opt_x_num
        N, d = self.settings.n_horizon, self.settings.collocation_deg
        cols = [np.asarray(xs["_x", k + 1, 0, c]).reshape(-1) * self._x_scale for k in range(N) for c in range(d)]
        return np.array(cols).T[: self.split.n_x]

    def _uptakes_at_points(self) -> np.ndarray:
        return np.asarray(self._uptakes_map(self._collocation_states(), self._p_now)).T  # (N d, k)

    def _fix_clock(self, t0: float) -> None:
        """Write the exact clock values into ``opt_x_num`` (its collocation is exact anyway)."""
        xs, N, dt = self.mpc.opt_x_num, self.settings.n_horizon, self.settings.t_step
        i = "t_clock"
        n_pts = len(xs["_x", 1, 0])
        for c in range(n_pts):
            xs["_x", 0, 0, c, i] = t0
        for k in range(N + 1):  # the proximal term vanishes along the linearisation points
            for c in range(n_pts):
                xs["_x", k, 0, c, "prox"] = 0.0
        for k in range(N):
            for c, tau in enumerate(self._tau):
                xs["_x", k + 1, 0, c, i] = t0 + (k + tau) * dt
            for c in range(len(self._tau), n_pts):  # end of the interval's polynomial, then the node
                xs["_x", k + 1, 0, c, i] = t0 + (k + 1) * dt

    def _guess_integrator(self):
        if self._integ is None:
            f = self.split.native_rhs("SX")
            x, u, p = ca.SX.sym("x", self.split.n_x), ca.SX.sym("u"), ca.SX.sym("p", len(self.split.param_names))
            grid = [float(t) * self.settings.t_step for t in self._tau]
            self._integ = ca.integrator(
                "guess", "cvodes", {"x": x, "p": ca.vertcat(u, p), "ode": f(x, u, p)}, 0.0, grid,
                {"reltol": 1e-6, "abstol": 1e-9, "max_num_steps": 20000},
            )
        return self._integ

    def _write_guess(self, x0: np.ndarray, feeds: np.ndarray, t0: float) -> None:
        """A guess simulated from ``x0`` under ``feeds`` (one per interval), at do-mpc's storage places.

        do-mpc stores interval k as ``opt_x["_x", k + 1, 0, c]``: c < d the Radau points
        tau_1..tau_d, c = d the end of the interval's polynomial, c = d + 1 the node at t_{k+1}
        (``"_x", 0, 0, -1`` is the initial node).
        """
        N, dt, d = self.settings.n_horizon, self.settings.t_step, self.settings.collocation_deg
        xs = self.mpc.opt_x_num
        sc = self._x_scale
        n_pts = len(xs["_x", 1, 0])
        x = np.maximum(np.asarray(x0, float), 0.0)
        for c in range(n_pts):
            xs["_x", 0, 0, c] = np.r_[x, t0, 0.0] / sc
        for k in range(N):
            on = t0 + k * dt < self.problem.batch_time - 1e-9
            traj = np.repeat(x[None], d, axis=0)
            if on:
                try:
                    traj = np.maximum(np.asarray(self._guess_integrator()(x0=x, p=np.r_[feeds[k], self._p_now])["xf"]).T, 0.0)
                except RuntimeError:
                    pass
            for c in range(d):
                xs["_x", k + 1, 0, c] = np.r_[traj[c], t0 + (k + self._tau[c]) * dt, 0.0] / sc
            for c in range(d, n_pts):  # end of the interval's polynomial, then the node
                xs["_x", k + 1, 0, c] = np.r_[traj[-1], t0 + (k + 1) * dt, 0.0] / sc
            xs["_u", k, 0] = feeds[k]
            if "_eps" in xs.keys() and k < len(xs["_eps"]):
                xs["_eps", k, 0] = self._soft_violation(x)  # slacks at the guess's violation
            x = traj[-1]
        self.mpc.lam_x_num = ca.DM.zeros(self.mpc.n_opt_x)
        self.mpc.lam_g_num = ca.DM.zeros(ca.DM(self.mpc.nlp_cons_lb).numel())

    def _soft_violation(self, x: np.ndarray) -> np.ndarray:
        """Violation (>= 0) of each soft constraint at state ``x``, in do-mpc's order and constraint units."""
        names, roles, pb, b = self.split.state_names, self.split.roles, self.problem, self.settings.backoff
        vol = max(float(x[names.index(roles.volume)]), 1e-9)
        viol = [vol - pb.volume_max, x[names.index(roles.glucose)] / vol - (1 - b) * pb.glucose_max]
        if roles.acetate is not None:
            viol.append(x[names.index(roles.acetate)] / vol - (1 - b) * pb.acetate_max)
        return np.maximum(np.array(viol, dtype=float), 0.0)

    def _filling_plan(self, x_hat: np.ndarray, t: float) -> np.ndarray:
        N = self.settings.n_horizon
        if self._plan is not None:
            k = int(round((t - self._plan_time) / self.settings.t_step))
            if 0 <= k < self._plan.size:
                rest = self._plan[k:]
                return np.r_[rest, np.repeat(rest[-1], N - rest.size)]
        iv = self.split.state_names.index(self.split.roles.volume)
        left = max(self.problem.batch_time - t, self.settings.t_step)
        f = np.clip((self.problem.volume_max - x_hat[iv]) / left, self.problem.feed_min, self.problem.feed_max)
        return np.full(N, f)

    def _shift(self) -> None:
        """Shift the stored solution and multipliers one interval forward (last interval repeated)."""
        mpc = self.mpc
        _shift_struct(mpc.opt_x_num)
        lam_x = mpc._opt_x(ca.DM(mpc.lam_x_num))
        _shift_struct(lam_x)
        mpc.lam_x_num = lam_x.cat
        lam_g = np.asarray(mpc.lam_g_num).reshape(-1).copy()
        nx, N = self.split.n_x + 2, self.settings.n_horizon
        b, rem = divmod(lam_g.size - nx, N)
        if rem == 0 and b > 0:
            blocks = lam_g[nx:].reshape(N, b)
            blocks[:-1] = blocks[1:].copy()
            lam_g[nx:] = blocks.reshape(-1)
            mpc.lam_g_num = ca.DM(lam_g)
        else:
            mpc.lam_g_num = ca.DM.zeros(lam_g.size)

    def _set_taylor(self, coef, rho: float) -> None:
        """Taylor coefficients (at the collocation points, in order) and the proximal weight into the parameters."""
        rows = _pack_coef(coef, self.order)  # (N d, m)
        N, d = self.settings.n_horizon, self.settings.collocation_deg
        per_stage = rows.reshape(N, d * rows.shape[1])
        p = self.mpc.opt_p_num
        for k in range(N):
            p["_tvp", k, "coef"] = per_stage[k]
            p["_tvp", k, "rho"] = rho
        p["_tvp", N, "coef"] = per_stage[-1]
        p["_tvp", N, "rho"] = rho

    def _taylor(self, q):
        tic = time.perf_counter()
        coef = self.network.taylor(q, self.order)
        return coef, time.perf_counter() - tic

    def _relinearise(self, warm: bool):
        """Solve, re-linearise along the solution, repeat until the uptakes stop moving (see the module docstring).

        Globalisation: the NLP carries a proximal term rho * sum_j ||(q - q_j) / q_scale||^2
        integrated over the horizon (zero, with zero gradient, at the fixed point, so the converged
        step is unchanged). After each solve the network is evaluated at the new uptakes (the next
        linearisation, one batched call) and the Taylor models' largest prediction error there,
        relative to each output's magnitude, adapts rho: above ``err_grow`` it triples (up to
        ``rho_max``), below ``err_shrink`` it shrinks tenfold (down to ``rho_min``). Points whose
        uptakes are pinned by the new initial state (the first interval after a shift) move
        whatever rho is, so steps are accepted; a failed solve is undone and retried with ten
        times rho.
        """
        mpc = self.mpc
        q_lin = self._uptakes_at_points()
        coef, net_t = self._taylor(q_lin)
        relin, solves, iters, dq, stats = 1, 0, 0, float("nan"), {}
        rho = max(self.rho0, self.rho_min)  # every step starts damped: the shift moves the plan most
        success = False
        self.last_trace = trace = []
        while True:
            self._set_taylor(coef, rho)
            saved = (ca.DM(mpc.opt_x_num.cat), ca.DM(mpc.lam_x_num), ca.DM(mpc.lam_g_num))
            stats = self._solve(warm or solves > 0, relin=solves > 0)
            solves += 1
            iters += int(stats.get("iter_count", 0))
            if solves >= 2 * self.max_relin:
                break
            trace.append({"status": stats.get("return_status"), "iterations": stats.get("iter_count"), "rho": rho})
            if not stats.get("success", False):
                self._restore(saved)
                rho = min(rho * 10.0, self.rho_max)
                continue
            q_new = self._uptakes_at_points()
            dq = float(np.max(np.abs(q_new - q_lin)))
            trace[-1]["dq"] = dq
            if dq <= self.q_tol:
                success = True
                break
            if relin >= self.max_relin:
                break
            coef_new, t_net = self._taylor(q_new)
            net_t += t_net
            relin += 1
            scale = np.max(np.abs(coef_new.values), axis=0) + 1e-3
            err = float(np.max(np.abs(coef.predict(q_new) - coef_new.values) / scale))
            d = q_new - coef.points
            J_pred = coef.jacobians if coef.hessians is None else coef.jacobians + np.einsum("nrkl,nl->nrk", coef.hessians, d)
            jscale = np.max(np.abs(coef_new.jacobians), axis=(0, 2)) + 1e-3
            err_j = float(np.max(np.abs(J_pred - coef_new.jacobians) / jscale[None, :, None]))
            trace[-1]["model_error"], trace[-1]["jacobian_error"] = err, err_j
            if err <= self.model_tol[0] and err_j <= self.model_tol[1]:
                # the Taylor models equal the network (values and Jacobians) at the solution: it is
                # a KKT point of the native-graph problem up to these errors
                success = True
                break
            if err > self.err_grow:
                rho = min(rho * 3.0, self.rho_max)
            elif err < self.err_shrink:
                rho = max(rho / 10.0, self.rho_min)
            q_lin, coef = q_new, coef_new
        self._rho = rho
        return success, relin, net_t, dq, iters, solves, stats

    def _restore(self, saved) -> None:
        mpc = self.mpc
        mpc.opt_x_num.master = saved[0]
        mpc.lam_x_num, mpc.lam_g_num = saved[1], saved[2]

    def _solve(self, warm: bool, relin: bool = False) -> dict:
        mpc = self.mpc
        mpc.S = (self._S_relin if relin and self._S_relin is not None else self._S_warm) if warm else self._S_cold
        mpc.flags["initial_run"] = bool(warm)  # do-mpc passes the multipliers only when set
        mpc.solve()
        return mpc.solver_stats

    # ---------------------------------------------------------------- API
    def reset(self, x0, u0: float = 0.0, guess_feed=None) -> None:
        """Start a batch from the estimate ``x0`` (model units); ``u0`` is the feed before the first step [L/h].

        ``guess_feed`` (L/h, per interval or constant) is simulated for the first guess and is the
        fallback plan until the first successful solve; by default the constant feed that fills
        the reactor to ``volume_max`` over the batch.
        """
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        self.records = []
        self._u_prev = float(u0)
        self._plan, self._solved, self._q_lin = None, False, None
        self._rho = self.rho0
        N = self.settings.n_horizon
        if guess_feed is not None:
            g = np.asarray(guess_feed, dtype=float).reshape(-1)
            g = np.broadcast_to(g, (N,)).copy() if g.size == 1 else np.resize(g, N)
            self._plan, self._plan_time = np.clip(g, self.problem.feed_min, self.problem.feed_max), 0.0

    def step(self, x_hat, t: float, params=None) -> float:
        """Solve from the state estimate ``x_hat`` at time ``t`` [h]; return the feed to apply [L/h].

        Parameters
        ----------
        x_hat : array_like
            State estimate (model units); negative amounts are clipped to zero.
        t : float
            Current time [h].
        params : array_like, optional
            Model parameters (glucose Vmax, mmol/gDW/h); nominal by default.
        """
        wall0, cpu0 = time.perf_counter(), time.process_time()
        x_hat = np.maximum(np.asarray(x_hat, dtype=float).reshape(-1), 0.0)
        if x_hat.size != self.split.n_x:
            raise ControlError(f"x_hat has {x_hat.size} entries, the model has {self.split.n_x} states.")
        if params is not None:
            self._p_now = np.asarray(params, dtype=float).reshape(-1)
        t = float(t)
        warm = self.settings.warm_start and self._solved
        if self._solved:
            self._shift()
        else:
            self._write_guess(x_hat, self._filling_plan(x_hat, t), t)
        self._fix_clock(t)
        self._set_parameters(x_hat, t)
        iters, solves, relin, net_t, dq = 0, 0, 0, 0.0, float("nan")
        if self.flux == "native":
            stats = self._solve(warm)
            iters, solves = int(stats.get("iter_count", 0)), 1
            success = bool(stats.get("success", False))
        else:
            success, relin, net_t, dq, iters, solves, stats = self._relinearise(warm)
        status = str(stats.get("return_status", "unknown"))
        N = self.settings.n_horizon
        fallback = ""
        if success:
            feed = float(np.clip(float(self.mpc.opt_x_num["_u", 0, 0][0]), self.problem.feed_min, self.problem.feed_max))
            self._plan = np.array([float(self.mpc.opt_x_num["_u", k, 0][0]) for k in range(N)])
            self._plan_time = t
            self._solved = True
            xN = np.asarray(self.mpc.opt_x_num["_x", N, 0, -1]).reshape(-1) * self._x_scale
            pred = self._objective(xN)
        else:
            k = int(round((t - self._plan_time) / self.settings.t_step)) if self._plan is not None else -1
            if self._plan is not None and 0 <= k < self._plan.size:
                feed, fallback = float(self._plan[k]), "shifted_plan"
            else:
                feed, fallback = float(self.settings.safe_feed), "safe_feed"
            feed = float(np.clip(feed, self.problem.feed_min, self.problem.feed_max))
            self._solved = False
            pred = float("nan")
        self._u_prev = feed
        self.records.append(
            NetworkStepRecord(
                time=t, feed=feed, status=status, success=success, iterations=iters, relinearisations=relin,
                solves=solves, q_change=dq, wall_time=time.perf_counter() - wall0,
                cpu_time=time.process_time() - cpu0, network_time=net_t, warm=warm, fallback=fallback,
                predicted_objective=pred,
            )
        )
        return feed

    def plan(self) -> np.ndarray:
        """Feed plan of the last successful solve, one value per interval [L/h]."""
        return np.array([]) if self._plan is None else self._plan.copy()

    def predicted_states(self) -> np.ndarray:
        """States (N + 1, n_x) at the interval boundaries of the last solution (model units)."""
        xs, N = self.mpc.opt_x_num, self.settings.n_horizon
        return np.array([np.asarray(xs["_x", k, 0, -1]).reshape(-1) * self._x_scale for k in range(N + 1)])[:, : self.split.n_x]

    def _objective(self, x_end: np.ndarray) -> float:
        names = self.split.state_names
        bio = float(x_end[names.index(self.split.roles.biomass)])
        if self.problem.objective == "biomass":
            return bio
        if self.problem.objective == "product":
            return float(x_end[names.index(self.split.roles.product)])
        return bio / float(x_end[names.index(self.split.roles.volume)]) / self.problem.batch_time


def _shift_struct(st) -> None:
    """Shift every repeated entry of a do-mpc ``opt_x``-shaped struct one stage forward, in place."""
    for key in st.keys():
        n = len(st[key])
        if n < 2:
            continue
        old = [
            ca.DM(st[key, k, 0]) if not isinstance(st[key, k, 0], list) else [ca.DM(v) for v in st[key, k, 0]]
            for k in range(n)
        ]
        for k in range(n - 1):
            src = old[k + 1]
            if isinstance(src, list):
                for c, v in enumerate(src):
                    st[key, k, 0, c] = v
            else:
                st[key, k, 0] = src


def build_network_mpc(
    split: SplitFedBatch,
    problem: BatchProblem,
    settings: MPCSettings | None = None,
    *,
    flux: str = "taylor",
    network=None,
    order: int = 2,
    symvar: str = "SX",
    q_tol: float = 1e-6,
    max_relin: int = 10,
    x_scale=None,
    q_scale=None,
    rho0: float = 10.0,
    cell_function=None,
    relin_mu_init: float | None = 1e-6,
    model_tol: tuple[float, float] = (1e-6, 1e-4),
) -> NetworkMPC:
    """Build the economic feed MPC (do-mpc, Radau collocation) with the network in the loop.

    Parameters
    ----------
    split : SplitFedBatch
        The fed-batch model split at the network (:func:`split_fedbatch`).
    problem : BatchProblem
        Objective, batch time, feed bounds and limits (units in its docstring).
    settings : MPCSettings, optional
        Horizon, collocation (``collocation_ni`` must be 1), penalties, IPOPT options.
    flux : {"taylor", "native"}
        ``"taylor"``: per-point Taylor models as time-varying parameters, re-linearised until
        converged (needs ``network``); ``"native"``: ``split.cell``'s CasADi graph in the model.
    network : mpc_bio.embed.batched.BatchedNetwork, optional
        The batched torch evaluator; its outputs must be ``split.output_ids``.
    order : {1, 2}
        Order of the Taylor models.
    symvar : {"SX", "MX"}
        do-mpc symbol type.
    q_tol : float
        Re-linearisation stops when no uptake at a collocation point moved more than this in the
        last solve [mmol/gDW/h], ...
    model_tol : (float, float)
        ... or when the Taylor models match the network at the solution: largest value error
        relative to each output's magnitude, and largest Jacobian error relative to each output's
        largest partial derivative [-]. Either way the step's solution is then a KKT point of the
        native-graph problem up to these errors (flat directions of the objective can keep the
        uptakes moving while the models already agree).
    max_relin : int
        Most re-linearisations per step; a step that has not converged by then counts as failed.
    x_scale : array_like, optional
        Typical magnitude of each state (do-mpc variable scaling).
    q_scale : array_like, optional
        Scale of each uptake in the proximal term [mmol/gDW/h] (default: the width of the
        network's training domain).
    rho0 : float
        Initial weight of the proximal term (objective units per h, uptakes scaled by ``q_scale``).
    cell_function : casadi.Function, optional
        With ``flux="native"``: the network graph to embed instead of ``split.cell.function``
        (e.g. the native MX graph, :func:`mpc_bio.embed.to_casadi` with ``symbolic="MX"``).
    relin_mu_init : float or None
        IPOPT's initial barrier parameter for the re-solves after a re-linearisation (the first
        solve of a step uses the warm-start options, ``mu_init`` 1e-4); ``None``: the same.
    """
    from mpc_bio.process.dompc import import_do_mpc, quiet_do_mpc

    do_mpc = import_do_mpc()
    settings = settings or MPCSettings()
    if flux not in ("taylor", "native"):
        raise ControlError(f"The 'flux' parameter of build_network_mpc must be 'taylor' or 'native'. Got {flux!r} instead.")
    if order not in (1, 2):
        raise ControlError(f"The 'order' parameter of build_network_mpc must be 1 or 2. Got {order!r} instead.")
    if settings.collocation_ni != 1:
        raise ControlError("build_network_mpc supports collocation_ni = 1 only.")
    if flux == "taylor":
        if network is None:
            raise ControlError("The Taylor design needs the batched network (mpc_bio.embed.batched.BatchedNetwork).")
        if tuple(network.output_ids) != tuple(split.output_ids):
            raise ControlError(
                f"The batched network's outputs {list(network.output_ids)} must be the split model's {list(split.output_ids)}."
            )
    if symvar not in ("SX", "MX"):
        raise ControlError(f"The 'symvar' parameter must be 'SX' or 'MX'. Got {symvar!r} instead.")
    d = settings.collocation_deg
    tau = radau_times(d)
    k, r = split.n_q, split.n_v
    m = do_mpc.model.Model("continuous", symvar)
    xs = [m.set_variable("_x", n) for n in split.state_names]
    clock = m.set_variable("_x", "t_clock")
    F = m.set_variable("_u", "F")
    ps = [m.set_variable("_p", n) for n in split.param_names]
    flag = m.set_variable("_tvp", "in_batch")
    t_start = m.set_variable("_tvp", "t_start")
    x, p = ca.vertcat(*xs), ca.vertcat(*ps)
    q = split.uptakes(x, p)
    prox = m.set_variable("_x", "prox")  # noqa: F841 (its rhs is set below)
    if q_scale is None and network is not None:
        q_scale = np.asarray(network.domain_high, float) - np.asarray(network.domain_low, float)
    rho = m.set_variable("_tvp", "rho")
    q_scale = 1.0 / np.maximum(np.asarray(q_scale, dtype=float).reshape(-1), 1e-12) if q_scale is not None else np.ones(k)
    dprox = ca.DM(0.0) if symvar == "SX" else ca.MX(0.0)
    if flux == "native":
        v = (cell_function or split.cell.function)(q)
    else:
        n_c = _n_coef(k, r, order)
        coef = m.set_variable("_tvp", "coef", (d * n_c, 1))
        s = (clock - t_start) / settings.t_step
        L = _lagrange(s, tau)
        v = 0
        for j in range(d):
            cj = coef[j * n_c : (j + 1) * n_c]
            v = v + L[j] * _taylor_expr(q, cj, k, r, order)
            dprox = dprox + L[j] * ca.sumsqr((q - cj[0:k]) * ca.DM(q_scale))
        dprox = rho * dprox
    dx = flag * split.rhs(x, F, p, v)
    for i, n in enumerate(split.state_names):
        m.set_rhs(n, dx[i])
    m.set_rhs("t_clock", ca.DM(1.0) if symvar == "SX" else ca.MX(1.0))
    m.set_rhs("prox", dprox)
    roles = split.roles
    vol = m.x[roles.volume]
    m.set_expression("c_glucose", m.x[roles.glucose] / vol)
    if roles.acetate is not None:
        m.set_expression("c_acetate", m.x[roles.acetate] / vol)
    m.setup()

    mpc = do_mpc.controller.MPC(m)
    opts = {
        "ipopt.max_iter": settings.max_iter,
        "ipopt.tol": settings.tol,
        "ipopt.print_level": 0,
        "ipopt.sb": "yes",
        "print_time": 0,
        "record_time": True,
        "ipopt.linear_solver": settings.linear_solver,
    }
    warm_opts = {
        **opts,
        "ipopt.warm_start_init_point": "yes",
        "ipopt.warm_start_bound_push": 1e-6,
        "ipopt.warm_start_mult_bound_push": 1e-6,
        "ipopt.mu_init": 1e-4,
    }
    mpc.settings.n_horizon = settings.n_horizon
    mpc.settings.t_step = settings.t_step
    mpc.settings.state_discretization = "collocation"
    mpc.settings.collocation_type = "radau"
    mpc.settings.collocation_deg = d
    mpc.settings.collocation_ni = 1
    mpc.settings.store_full_solution = False
    mpc.settings.store_lagr_multiplier = False
    mpc.settings.nlpsol_opts = opts
    mpc.settings.store_solver_stats = []
    if problem.objective == "biomass":
        mayer = m.x[roles.biomass]
    elif problem.objective == "product":
        if roles.product is None:
            raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
        mayer = m.x[roles.product]
    else:
        mayer = m.x[roles.biomass] / m.x[roles.volume] / problem.batch_time
    mpc.set_objective(mterm=-mayer / settings.objective_scale + m.x["prox"], lterm=ca.DM(0.0))
    mpc.set_rterm(F=settings.move_penalty / settings.objective_scale)
    mpc.bounds["lower", "_u", "F"] = problem.feed_min
    mpc.bounds["upper", "_u", "F"] = problem.feed_max
    for role in ("glucose", "biomass", "acetate", "product"):
        name = getattr(roles, role)
        if name is not None:
            mpc.bounds["lower", "_x", name] = 0.0
    mpc.bounds["lower", "_x", roles.volume] = 1e-6
    pen = settings.soft_penalty / settings.objective_scale
    b = settings.backoff
    mpc.set_nl_cons("volume_max", m.x[roles.volume], ub=problem.volume_max, soft_constraint=True, penalty_term_cons=pen)
    mpc.set_nl_cons("glucose_max", m.aux["c_glucose"], ub=(1 - b) * problem.glucose_max, soft_constraint=True, penalty_term_cons=pen)
    if roles.acetate is not None:
        mpc.set_nl_cons("acetate_max", m.aux["c_acetate"], ub=(1 - b) * problem.acetate_max, soft_constraint=True, penalty_term_cons=pen)
    if x_scale is not None:
        for n, sc in zip(split.state_names, np.asarray(x_scale, dtype=float)):
            mpc.scaling["_x", n] = float(sc)
    tvp_t = mpc.get_tvp_template()
    mpc.set_tvp_fun(lambda t_now: tvp_t)
    p_t = mpc.get_p_template(1)
    p_t["_p", 0] = split.param_values
    mpc.set_p_fun(lambda t_now: p_t)
    with quiet_do_mpc():
        mpc.setup()
    ctrl = NetworkMPC(mpc, split, problem, settings, flux=flux, network=network, order=order, q_tol=q_tol,
                      max_relin=max_relin, x_scale=x_scale, rho0=rho0, model_tol=model_tol)
    ctrl._S_cold = mpc.S
    ctrl._S_warm = ca.nlpsol("S_warm", "ipopt", mpc.nlp, warm_opts)
    if flux == "taylor" and relin_mu_init is not None:
        ctrl._S_relin = ca.nlpsol("S_relin", "ipopt", mpc.nlp, {**warm_opts, "ipopt.mu_init": float(relin_mu_init)})
    return ctrl
