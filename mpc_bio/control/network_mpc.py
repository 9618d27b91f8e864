"""Feed MPC with the surrogate network itself in the loop: one batched torch call per NLP evaluation.

The NLP is do-mpc's (:mod:`mpc_bio.control.mpc`) written out directly: Radau collocation of
degree d on N intervals, the interval boundaries (nodes) lifted as variables with continuity
constraints, the right-hand side multiplied by an "in batch" flag per interval, the Mayer term at
the last node divided by ``objective_scale``, the squared feed moves (the first against the feed
applied before the step) weighted by ``move_penalty / objective_scale``, feed bounds, amounts >= 0
(volume >= 1e-6) at the collocation points of intervals 0..N-2 and at nodes 1..N (do-mpc's
bounds), and the volume, glucose and acetate limits as soft constraints at every node 0..N (one
slack per node and limit, linear penalty ``soft_penalty / objective_scale``, glucose and acetate
backed off by ``backoff``). Unlike do-mpc, which checks them at the start of each interval only,
the last node is constrained too: otherwise a plan may break a limit in its last interval (e.g.
dump acetate at the end of the batch), which a later step, whose horizon no longer ends there,
has to undo.

The surrogate network is the only part not compiled: the uptakes at all N d collocation points are
gathered into one (k, N d) matrix and evaluated by one batched torch call
(:func:`mpc_bio.embed.batched.batched_casadi_function`: value, exact block-diagonal Jacobian and
second derivatives of the same points from one call; the derivatives are computed with the value
at the first trial point of an IPOPT iteration, the value alone at the further points of a
backtracking line search, whose derivatives are rarely used). Everything else (kinetics, balances,
collocation, constraints, objective) is three CasADi SX functions, so an NLP evaluation is a few
function calls instead of thousands of MX instructions. IPOPT's constraint Jacobian and Hessian of
the Lagrangian are assembled the same way: the network enters them by its values, Jacobians and
second derivatives at the collocation points (the matrices of
:func:`mpc_bio.embed.batched.network_taylor_function`, from the same torch call), everything
else is SX functions of these coefficients (the constraints with the network replaced by its
first-order model around the same point have the exact Jacobian and, with the network's own
curvature added, the exact Hessian there). The fed-batch model is split at the network by
:func:`mpc_bio.process.model.fedbatch_split`. :mod:`mpc_bio.control.taylor_mpc` solves the same NLP
with the network replaced by per-point Taylor models (``MPCSettings.backend = "network_taylor"``).

IPOPT's Hessian of the Lagrangian is exact, or (``MPCSettings.network_hessian``, by default for
networks with kink features) has the network's curvature at each collocation point (a k x k
matrix, its second derivatives weighted by their multipliers) replaced by its absolute value
(each eigenvalue by its absolute value): near a kink the network's second derivatives are large
and of either sign; with them IPOPT regularises the whole Hessian so strongly that its steps
stall, and with the negative ones merely set to zero its steps along them are unbounded and the
line search cuts them back for many iterations. The modification changes the path, not the KKT
conditions.

The MPC's copy of a network with kink features has their sharp bends widened to
``MPCSettings.network_kink_width`` (default: the surrogate's kink reach, :func:`kink_width`), so
the curvature IPOPT meets where the plan rides a kink line is bounded.

Warm starts follow :class:`mpc_bio.control.mpc.FeedMPC`: node k holds the state at t_k, the
collocation points of interval k their Radau times; after a successful solve the solution, its
slacks and all multipliers are shifted one interval, the shifted states are corrected onto the
new estimate (``MPCSettings.warm_start_correction``: the shifted feeds kept, the states solved
from the collocation equations by Newton's method, the slacks reset to the violations, so the
start meets the model equations although the estimate jumped) and IPOPT starts with its warm-start options;
after a reset or a failure the guess is simulated (CVODES on the network itself) under the plan
and IPOPT starts cold; a failed warm solve is repeated cold within the step; a step that still
fails applies the shifted plan (or ``safe_feed``). torch's intra-op threads are pinned to
``MPCSettings.torch_threads`` for the whole step and restored afterwards.
"""

from __future__ import annotations

import time

import casadi as ca
import numpy as np

from mpc_bio.collocation import radau_points, radau_residuals
from mpc_bio.control.mpc import MPCStepRecord, fallback_feed, guess_plan, ipopt_options, limit_bounds, soft_violation
from mpc_bio.control.settings import BatchProblem, ControlError, MPCSettings, ReactorRoles

__all__ = ["NetworkMPC", "build_network_mpc", "kink_width"]


class NetworkMPC:
    """Economic feed MPC on the network itself; build it with :func:`build_network_mpc`.

    Same interface as :class:`mpc_bio.control.mpc.FeedMPC` (:meth:`reset`, :meth:`step`,
    :meth:`plan`, ``records`` of :class:`MPCStepRecord`, ``failures``), so
    :func:`mpc_bio.control.closed_loop.run_closed_loop` takes either.

    Attributes
    ----------
    network : mpc_bio.embed.batched.BatchedNetwork
        The batched evaluator (its ``calls`` and ``wall_time`` count the torch calls).
    records : list of MPCStepRecord
    """

    def __init__(self, split, roles: ReactorRoles, problem: BatchProblem, settings: MPCSettings, network, x_scale=None) -> None:
        from mpc_bio.embed.batched import batched_casadi_function

        if settings.collocation_ni != 1:
            raise ControlError(f"The network MPC needs MPCSettings.collocation_ni = 1. Got {settings.collocation_ni} instead.")
        if tuple(network.output_ids) != tuple(split.output_ids):
            raise ControlError(f"The network's outputs {list(network.output_ids)} must be the split model's {list(split.output_ids)}.")
        self.split, self.roles, self.problem, self.settings, self.network = split, roles, problem, settings, network
        self.records: list[MPCStepRecord] = []
        N, d, dt = settings.n_horizon, settings.collocation_deg, settings.t_step
        nx, npar = split.n_x, len(split.param_names)
        names = split.state_names
        self._iv, self._ig, self._ib = names.index(roles.volume), names.index(roles.glucose), names.index(roles.biomass)
        self._ia = names.index(roles.acetate) if roles.acetate is not None and roles.acetate in names else None
        self._n_soft = n_soft = 2 if self._ia is None else 3
        xs = np.ones(nx) if x_scale is None else np.asarray(x_scale, dtype=float).reshape(-1)
        if xs.size != nx or np.any(xs <= 0):
            raise ControlError(f"x_scale must hold {nx} positive state magnitudes. Got {xs.tolist()} instead.")
        self._xs = xs
        self._tau = radau_points(d)
        self._sizes = (nx * N * d, N, n_soft * (N + 1), nx * (N + 1))
        nw = sum(self._sizes)
        # the symbols: w = [Xc (scaled), U, eps, Xn (scaled)], P = [x0, u_prev, p, in-batch flags]
        w = ca.SX.sym("w", nw)
        P = ca.SX.sym("P", nx + 1 + npar + N)
        Xc_s, U, E, Xn_s = self._unpack(w)
        S = ca.DM(xs)
        Xc = Xc_s * ca.repmat(S, 1, N * d)
        Xn = Xn_s * ca.repmat(S, 1, N + 1)
        x0, u_prev, p, flag = P[:nx], P[nx], P[nx + 1 : nx + 1 + npar], P[nx + 1 + npar :].T
        pr = ca.repmat(p, 1, N * d)
        Q = split.uptakes.map(N * d)(Xc, pr)
        V = ca.SX.sym("V", len(split.output_ids), N * d)
        Fx = split.rhs.map(N * d)(Xc, ca.kron(U.T, ca.DM.ones(1, d)), pr, V) * ca.repmat(ca.kron(flag, ca.DM.ones(1, d)), nx, 1)
        g, lbg, ubg = [(Xn[:, 0] - x0) / S], [np.zeros(nx)], [np.zeros(nx)]
        b = settings.backoff
        ub_soft = [problem.volume_max, (1 - b) * problem.glucose_max] + ([(1 - b) * problem.acetate_max] if n_soft == 3 else [])
        obj = 0
        scale = settings.objective_scale
        for k in range(N + 1):
            if k == N:  # the limits at the last node
                g.append(self._soft(Xn[:, N]) - E[:, N])
                lbg.append(np.full(n_soft, -np.inf))
                ubg.append(np.array(ub_soft))
                obj += settings.soft_penalty / scale * ca.sum1(E[:, N])
                break
            points = [Xc[:, k * d + j] for j in range(d)]
            for residual in radau_residuals(lambda _x, j: Fx[:, k * d + j], Xn[:, k], points, dt):
                g.append(residual / S)
            g.append((Xn[:, k + 1] - Xc[:, (k + 1) * d - 1]) / S)  # continuity (tau_d = 1)
            lbg += [np.zeros(nx * (d + 1))]
            ubg += [np.zeros(nx * (d + 1))]
            g.append(self._soft(Xn[:, k]) - E[:, k])
            lbg.append(np.full(n_soft, -np.inf))
            ubg.append(np.array(ub_soft))
            obj += settings.soft_penalty / scale * ca.sum1(E[:, k])
            du = U[k] - (u_prev if k == 0 else U[k - 1])
            obj += settings.move_penalty / scale * du**2
        obj += -self._mayer(Xn[:, N]) / scale
        self._gblock = nx * (d + 1) + n_soft
        q_fun = ca.Function("network_inputs", [w, P], [Q])
        g_fun = ca.Function("collocation_constraints", [w, P, V], [ca.vertcat(*g)])
        f_fun = ca.Function("objective", [w, P], [obj])
        wm, Pm = ca.MX.sym("w", nw), ca.MX.sym("P", P.numel())
        self._lbg, self._ubg = np.concatenate(lbg), np.concatenate(ubg)
        lo = np.zeros(nx)  # every state of the fed-batch is an amount
        lo[self._iv] = 1e-6
        lo = lo / xs
        lbx_c = np.full((N * d, nx), -np.inf)
        lbx_c[: (N - 1) * d] = lo
        lbx_n = np.full((N + 1, nx), -np.inf)
        lbx_n[1:] = lo
        self._lbx = np.concatenate([lbx_c.reshape(-1), np.full(N, problem.feed_min), np.zeros(n_soft * (N + 1)), lbx_n.reshape(-1)])
        self._ubx = np.concatenate(
            [np.full(nx * N * d, np.inf), np.full(N, problem.feed_max), np.full(n_soft * (N + 1), np.inf), np.full(nx * (N + 1), np.inf)]
        )
        self._funs = (q_fun, g_fun, f_fun)
        # the warm start's correction: the equality constraints (initial state, collocation,
        # continuity) as functions of the states at fixed feeds, with their Jacobian (first-order
        # torch calls of the network, value and Jacobian in one)
        a, bu, c, _ = self._sizes
        self._eq_rows = np.flatnonzero((self._lbg == 0.0) & (self._ubg == 0.0))
        self._x_cols = np.r_[np.arange(a), np.arange(a + bu + c, nw)]
        self._x_lo = np.tile(lo, N * d + N + 1)  # every state is an amount, at every point
        self._net_fun1 = batched_casadi_function(network, N * d, name="network_horizon_first_order", exact_hessian=False, prefetch=True)
        g_eq = g_fun(wm, Pm, self._net_fun1(q_fun(wm, Pm)))[self._eq_rows.tolist()]
        self._eq_fun = ca.Function("state_equations", [wm, Pm], [g_eq, ca.jacobian(g_eq, wm)[:, self._x_cols.tolist()]])
        self._build_solvers(q_fun, g_fun, f_fun)
        self._guess_integ = None
        self._p_now = np.asarray(split.param_values, dtype=float).copy()
        self._u_prev = 0.0
        self._sol = self._lam_x = self._lam_g = None
        self._p_solved: np.ndarray | None = None  # the parameters of the last successful solve
        self._plan: np.ndarray | None = None
        self._plan_time = 0.0

    def _build_solvers(self, q_fun, g_fun, f_fun) -> None:
        """The NLP with the batched network callback (``self.nlp``) and its cold and warm IPOPT solvers."""
        from mpc_bio.embed.batched import batched_casadi_function

        settings, N, d = self.settings, self.settings.n_horizon, self.settings.collocation_deg
        # the derivatives come with the value of the first trial point of an IPOPT iteration (most are
        # accepted), the value alone at the further points of a backtracking line search
        self._net_fun = batched_casadi_function(self.network, N * d, name="network_horizon", prefetch="adaptive")
        self._callbacks: list = []
        wm, Pm = ca.MX.sym("w", q_fun.size1_in(0)), ca.MX.sym("P", q_fun.size1_in(1))
        nlp = {"x": wm, "p": Pm, "f": f_fun(wm, Pm), "g": g_fun(wm, Pm, self._net_fun(q_fun(wm, Pm)))}
        self.nlp = nlp  # the NLP (x: w, p: P) for custom solvers or inspection
        mode = settings.network_hessian
        #: whether the network's curvature in IPOPT's Hessian is convexified (see MPCSettings.network_hessian)
        self.convexified = mode == "convexified" or (mode == "auto" and getattr(self.network, "n_kinks", 0) > 0)
        cold, warm = ipopt_options(settings)
        jac = self._jacobian_of_constraints(q_fun, g_fun)
        hess = self._hessian_of_lagrangian(q_fun, g_fun, f_fun, convexify=self.convexified)
        cold, warm = {**cold, "jac_g": jac, "hess_lag": hess}, {**warm, "jac_g": jac, "hess_lag": hess}
        self._S_cold = ca.nlpsol("network_mpc", "ipopt", nlp, cold)
        self._S_warm = ca.nlpsol("network_mpc_warm", "ipopt", nlp, warm) if settings.warm_start else self._S_cold

    def _taylor_symbols(self, q_fun, g_fun):
        """SX symbols (w, P, Q0, V0, J0), the uptakes' move dQ = Q(w) - Q0 and the network's first-order model V0 + J0 dQ."""
        nw, nP = q_fun.size1_in(0), q_fun.size1_in(1)
        k, n = q_fun.size_out(0)
        r = g_fun.size_in(2)[0]
        ws, Ps = ca.SX.sym("w", nw), ca.SX.sym("P", nP)
        Q0, V0, J0 = ca.SX.sym("Q0", k, n), ca.SX.sym("V0", r, n), ca.SX.sym("J0", r * k, n)
        dQ = q_fun(ws, Ps) - Q0
        V1 = V0
        for j in range(k):
            V1 = V1 + J0[r * j : r * (j + 1), :] * ca.repmat(dQ[j, :], r, 1)
        return ws, Ps, Q0, V0, J0, dQ, V1

    def _jacobian_of_constraints(self, q_fun, g_fun) -> ca.Function:
        """IPOPT's ``jac_g``: the constraints and their Jacobian, the network entering by its values and Jacobians.

        The constraints with the network replaced by its first-order model V0 + J0 (Q(w) - Q0) around
        the uptakes Q0 = Q(w) of the same point have the exact Jacobian there; the model's
        coefficients come from one batched call (:func:`mpc_bio.embed.batched.network_taylor_function`),
        the rest is one SX function.
        """
        from mpc_bio.embed.batched import network_taylor_function

        ws, Ps, Q0, V0, J0, _, V1 = self._taylor_symbols(q_fun, g_fun)
        jac = ca.Function("constraint_jacobian", [ws, Ps, Q0, V0, J0], [ca.jacobian(g_fun(ws, Ps, V1), ws)])
        taylor = network_taylor_function(self._net_fun, order=1, name="network_taylor_first_order")
        self._callbacks.append(taylor)  # alive as long as the functions built from it
        w, P = ca.MX.sym("x", ws.numel()), ca.MX.sym("p", Ps.numel())
        Q = q_fun(w, P)
        V, J = taylor(Q)
        return ca.Function("nlp_jac_g", [w, P], [g_fun(w, P, V), jac(w, P, Q, V, J)], ["x", "p"], ["g", "jac_g_x"])

    def _hessian_of_lagrangian(self, q_fun, g_fun, f_fun, convexify: bool = True) -> ca.Function:
        """IPOPT's Hessian of the Lagrangian, the network's curvature (optionally modified) added per point.

        With L(w, V) = lam_f f(w) + lam_g' g(w, V) and V = v(Q(w)): the Hessian of L with the network
        replaced by its first-order model V0 + J0 (Q(w) - Q0) around Q0 = Q(w) (everything but the
        network's own curvature: L_ww, the cross terms L_wV J Q_w, the uptakes' curvature
        sum_m (J' dL/dV)_m d2 Q_m / dw2), plus Q_w' M Q_w with M the network's curvature
        blockdiag_p(sum_i dL/dV[i, p] d2 v_i / dq2), each block with the absolute values of its
        eigenvalues when ``convexify`` (:func:`mpc_bio.embed.batched.network_curvature_function`).
        One batched call gives the network's coefficients, one SX function the adjoints dL/dV, one
        callback M, one SX function the Hessian.
        """
        from mpc_bio.embed.batched import network_curvature_function, network_taylor_function

        ws, Ps, Q0, V0, J0, dQ, V1 = self._taylor_symbols(q_fun, g_fun)
        k, n = dQ.shape
        r = V0.shape[0]
        ng = g_fun.size1_out(0)
        lfs, lgs = ca.SX.sym("lam_f"), ca.SX.sym("lam_g", ng)
        pairs = [(int(j), int(m)) for j, m in zip(*np.triu_indices(k))]
        Ms = ca.SX.sym("M", len(pairs), n)
        # 1/2 dQ' M dQ per point: its Hessian at dQ = 0 is Q_w' M Q_w
        quad = sum(ca.sum2(Ms[s, :] * dQ[j, :] * dQ[m, :]) * (0.5 if j == m else 1.0) for s, (j, m) in enumerate(pairs))
        L1 = lfs * f_fun(ws, Ps) + ca.dot(lgs, g_fun(ws, Ps, V1)) + quad
        hess = ca.Function("lagrangian_hessian", [ws, Ps, Q0, V0, J0, Ms, lfs, lgs], [ca.triu(ca.hessian(L1, ws)[0])])
        Vs = ca.SX.sym("V", r, n)
        adjoint = ca.Function(
            "network_adjoint", [ws, Ps, Vs, lgs], [ca.reshape(ca.gradient(ca.dot(lgs, g_fun(ws, Ps, Vs)), ca.vec(Vs)), r, n)]
        )
        taylor = network_taylor_function(self._net_fun, order=2, name="network_taylor_second_order")
        curv = network_curvature_function(r, k, n, convexify=convexify)
        self._callbacks += [taylor, curv]  # the callbacks live as long as the functions built from them
        w, P, lf, lg = ca.MX.sym("x", ws.numel()), ca.MX.sym("p", Ps.numel()), ca.MX.sym("lam_f"), ca.MX.sym("lam_g", ng)
        Q = q_fun(w, P)
        V, J, H = taylor(Q)
        M = curv(H, adjoint(w, P, V, lg))
        return ca.Function(
            "nlp_hess_l", [w, P, lf, lg], [hess(w, P, Q, V, J, M, lf, lg)], ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"]
        )

    # layout of the decision vector
    def _unpack(self, w):
        nx, N, d = self.split.n_x, self.settings.n_horizon, self.settings.collocation_deg
        a, b, c, _ = self._sizes
        Xc = ca.reshape(w[:a], nx, N * d) if isinstance(w, ca.SX) else w[:a].reshape(N * d, nx).T
        U = w[a : a + b]
        E = (
            ca.reshape(w[a + b : a + b + c], self._n_soft, N + 1)
            if isinstance(w, ca.SX)
            else w[a + b : a + b + c].reshape(N + 1, self._n_soft).T
        )
        Xn = ca.reshape(w[a + b + c :], nx, N + 1) if isinstance(w, ca.SX) else w[a + b + c :].reshape(N + 1, nx).T
        return Xc, U, E, Xn

    def _pack(self, Xc, U, E, Xn) -> np.ndarray:
        return np.concatenate(
            [np.asarray(Xc).T.reshape(-1), np.asarray(U).reshape(-1), np.asarray(E).T.reshape(-1), np.asarray(Xn).T.reshape(-1)]
        )

    def _soft(self, node):
        vol = node[self._iv]
        return ca.vertcat(vol, node[self._ig] / vol, *([node[self._ia] / vol] if self._ia is not None else []))

    def _mayer(self, x_end):
        pb, roles, names = self.problem, self.roles, self.split.state_names
        if pb.objective == "biomass":
            return x_end[self._ib]
        if pb.objective == "product":
            if roles.product is None or roles.product not in names:
                raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
            return x_end[names.index(roles.product)]
        return x_end[self._ib] / x_end[self._iv] / pb.batch_time

    @property
    def failures(self) -> int:
        """Number of steps whose solve failed (and used the fallback)."""
        return sum(1 for r in self.records if not r.success)

    def plan(self) -> np.ndarray:
        """Feed plan of the last successful solve, one value per interval [L/h] (empty before any)."""
        return np.array([]) if self._plan is None else self._plan.copy()

    def predicted_states(self) -> np.ndarray:
        """States (N + 1, n_x) at the nodes t_0..t_N of the last successful solve (model units)."""
        if self._sol is None:
            return np.zeros((0, self.split.n_x))
        return (self._unpack(self._sol)[3] * self._xs[:, None]).T.copy()

    def reset(self, x0, u0: float = 0.0, guess_feed=None) -> None:
        """Start a batch (see :meth:`mpc_bio.control.mpc.FeedMPC.reset`).

        Parameters
        ----------
        x0 : array_like
            Initial state estimate (the first solve's guess is simulated from it at step time).
        u0 : float
            Feed applied before the first step [L/h].
        guess_feed : float or array_like, optional
            Feed plan [L/h] of the first solve's guess (default: the filling feed); a given plan
            is also the fallback until the first successful solve.
        """
        self.records = []
        self._u_prev = float(u0)
        self._sol = self._lam_x = self._lam_g = self._p_solved = None
        self._plan, self._plan_time = None, 0.0
        self._p_now = np.asarray(self.split.param_values, dtype=float).copy()
        if guess_feed is not None:
            N = self.settings.n_horizon
            g = np.asarray(guess_feed, dtype=float).reshape(-1)
            g = np.broadcast_to(g, (N,)).copy() if g.size == 1 else np.resize(g, N)
            self._plan = np.clip(g, self.problem.feed_min, self.problem.feed_max)

    def _integrator(self):
        """CVODES on the network itself (one point per call), output at the Radau times of an interval."""
        if self._guess_integ is None:
            from mpc_bio.embed.batched import batched_casadi_function

            sp = self.split
            self._net1 = batched_casadi_function(self.network, 1, name="network_point", exact_hessian=False)
            x, u, p = ca.MX.sym("x", sp.n_x), ca.MX.sym("u"), ca.MX.sym("p", len(sp.param_names))
            ode = sp.rhs(x, u, p, self._net1(sp.uptakes(x, p)))
            grid = [float(s) * self.settings.t_step for s in self._tau]
            self._guess_integ = ca.integrator(
                "network_guess",
                "cvodes",
                {"x": x, "p": ca.vertcat(u, p), "ode": ode},
                0.0,
                grid,
                {"reltol": 1e-6, "abstol": 1e-9, "max_num_steps": 20000},
            )
        return self._guess_integ

    def _guess(self, x_hat: np.ndarray, t: float) -> np.ndarray:
        """A cold guess: simulated from ``x_hat`` under the shifted plan (or the filling feed)."""
        N, d, dt, nx = self.settings.n_horizon, self.settings.collocation_deg, self.settings.t_step, self.split.n_x
        feeds = guess_plan(self._plan, self._plan_time, t, float(x_hat[self._iv]), self.problem, self.settings)
        integ = self._integrator()
        x = np.maximum(x_hat, 0.0)
        Xc, Xn, E = np.zeros((nx, N * d)), np.zeros((nx, N + 1)), np.zeros((self._n_soft, N + 1))
        Xn[:, 0] = x
        for k in range(N):
            E[:, k] = soft_violation(x, self._iv, self._ig, self._ia, self.problem, self.settings.backoff)
            traj = np.repeat(x[:, None], d, axis=1)
            if t + k * dt < self.problem.batch_time - 1e-9:
                try:
                    traj = np.maximum(np.asarray(integ(x0=x, p=np.r_[feeds[k], self._p_now])["xf"]), 0.0)
                except RuntimeError:  # a far-off estimate: hold the state (unless it was Ctrl-C/SIGTERM)
                    from mpc_bio.interrupts import check_interrupt

                    check_interrupt()
            Xc[:, k * d : (k + 1) * d] = traj
            x = traj[:, -1]
            Xn[:, k + 1] = x
        E[:, N] = soft_violation(x, self._iv, self._ig, self._ia, self.problem, self.settings.backoff)
        s = self._xs[:, None]
        return self._pack(Xc / s, feeds, E, Xn / s)

    def _shift(self):
        """The last solution, its bound and constraint multipliers shifted one interval."""
        d, N = self.settings.collocation_deg, self.settings.n_horizon

        def sh(v):
            Xc, U, E, Xn = self._unpack(v)
            return self._pack(
                np.concatenate([Xc[:, d:], Xc[:, -d:]], axis=1),
                np.r_[U[1:], U[-1]],
                np.concatenate([E[:, 1:], E[:, -1:]], axis=1),
                np.concatenate([Xn[:, 1:], Xn[:, -1:]], axis=1),
            )

        nx, lg = self.split.n_x, self._lam_g
        G = lg[nx : nx + N * self._gblock].reshape(N, self._gblock)  # then the last node's limits
        return sh(self._sol), sh(self._lam_x), np.r_[lg[:nx], np.concatenate([G[1:], G[-1:]]).reshape(-1), lg[nx + N * self._gblock :]]

    def _corrected(self, w0: np.ndarray, P: np.ndarray) -> np.ndarray | None:
        """The shifted solution ``w0`` corrected onto the new state estimate and parameters in ``P``.

        The feeds are kept and the states (nodes and collocation points) solved from the NLP's
        equality constraints (initial state, collocation, continuity) by Newton's method from the
        shifted states: its first step is the linear correction by the states' sensitivities to
        the initial state and the parameters, its limit the collocation solution of the shifted
        plan from the new estimate. Amounts are clipped at their bounds and the soft limits'
        slacks set to the violations, so IPOPT starts feasible (up to the clipping). ``None``
        when Newton's method does not converge (``correction_max_iter`` iterations).
        """
        from scipy.sparse import csc_matrix
        from scipy.sparse.linalg import splu

        w = w0.copy()
        cols = self._x_cols
        tol = self.settings.correction_tol
        for _ in range(self.settings.correction_max_iter + 1):
            G, J = self._eq_fun(w, P)
            G = np.asarray(G).reshape(-1)
            if not np.all(np.isfinite(G)):
                return None
            if np.max(np.abs(G)) <= tol:
                break
            try:  # projected onto the amounts' bounds: a linearisation can take them negative
                w[cols] = np.maximum(w[cols] - splu(csc_matrix(J.sparse())).solve(G), self._x_lo)
            except RuntimeError:  # singular: no correction
                return None
        else:
            return None
        Xc, U, E, Xn = self._unpack(w)
        X = Xn * self._xs[:, None]
        E = np.stack(
            [soft_violation(X[:, k], self._iv, self._ig, self._ia, self.problem, self.settings.backoff) for k in range(X.shape[1])], axis=1
        )
        return self._pack(Xc, U, E, Xn)

    def _solve(self, solver, P, **start):
        from mpc_bio.interrupts import check_interrupt

        sol = solver(p=P, lbx=self._lbx, ubx=self._ubx, lbg=self._lbg, ubg=self._ubg, **start)
        check_interrupt()  # IPOPT (or a torch callback) turned Ctrl-C/SIGTERM into a failed status: stop
        return sol, solver.stats()

    def step(self, x_hat, t: float, params=None) -> float:
        """Solve from the state estimate ``x_hat`` at time ``t`` [h]; return the feed to apply [L/h].

        Parameters
        ----------
        x_hat : array_like
            State estimate (model units); negative amounts are clipped to zero.
        t : float
            Current time [h].
        params : array_like, optional
            Model parameters to predict with (the glucose Vmax); nominal by default.
        """
        from mpc_bio.embed.batched import torch_threads

        x_hat = np.maximum(np.asarray(x_hat, dtype=float).reshape(-1), 0.0)
        if x_hat.size != self.split.n_x:
            raise ControlError(f"x_hat has {x_hat.size} entries, the model has {self.split.n_x} states.")
        if params is not None:
            self._p_now = np.asarray(params, dtype=float).reshape(-1)
        t = float(t)
        N, dt = self.settings.n_horizon, self.settings.t_step
        flags = np.array([1.0 if t + k * dt < self.problem.batch_time - 1e-9 else 0.0 for k in range(N)])
        P = np.r_[x_hat, self._u_prev, self._p_now, flags]
        soft = np.flatnonzero(np.isneginf(self._lbg))  # the soft limits' rows, node by node (MPCSettings.hold_margin)
        self._ubg[soft] = np.tile(limit_bounds(x_hat, self._iv, self._ig, self._ia, self.problem, self.settings), soft.size // self._n_soft)
        shifted = self._sol is not None  # a successful solve to start from
        warm = self.settings.warm_start and shifted
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with torch_threads(self.settings.torch_threads):
            if warm:
                w0, lx, lg = self._shift()
                # a new parameter estimate breaks every collocation equation of the shifted solution
                # (a new state estimate only the linear initial-state constraint, which IPOPT's first
                # step meets): then correct it
                moved = self._p_solved is None or not np.array_equal(self._p_now, self._p_solved)
                corrected = self._corrected(w0, P) if self.settings.warm_start_correction and moved else None
                sol, st = self._solve(self._S_warm, P, x0=w0 if corrected is None else corrected, lam_x0=lx, lam_g0=lg)
            elif shifted:  # warm_start = false: the shifted primal solution, cold options
                sol, st = self._solve(self._S_cold, P, x0=self._shift()[0])
            else:
                sol, st = self._solve(self._S_cold, P, x0=self._guess(x_hat, t))
            iters, t_wall, t_cpu = (
                int(st.get("iter_count", 0)),
                float(st.get("t_wall_total", np.nan)),
                float(st.get("t_proc_total", np.nan)),
            )
            retried = False
            if shifted and not st.get("success", False):  # repeat cold from a simulated guess
                retried = True
                sol, st = self._solve(self._S_cold, P, x0=self._guess(x_hat, t))
                iters += int(st.get("iter_count", 0))
                t_wall += float(st.get("t_wall_total", np.nan))
                t_cpu += float(st.get("t_proc_total", np.nan))
        success = bool(st.get("success", False))
        w = np.asarray(sol["x"]).reshape(-1)
        _, U, _, Xn = self._unpack(w)
        fallback = ""
        if success:
            feed = float(np.clip(U[0], self.problem.feed_min, self.problem.feed_max))
            self._sol, self._lam_x, self._lam_g = w, np.asarray(sol["lam_x"]).reshape(-1), np.asarray(sol["lam_g"]).reshape(-1)
            self._plan, self._plan_time = np.clip(U, self.problem.feed_min, self.problem.feed_max), t
            self._p_solved = self._p_now.copy()
            pred = float(self._mayer(Xn[:, -1] * self._xs))
        else:
            feed, fallback = fallback_feed(self._plan, self._plan_time, t, self.problem, self.settings)
            self._sol = None
            pred = float("nan")
        self._u_prev = feed
        self.records.append(
            self._record(
                time=t,
                feed=feed,
                status=str(st.get("return_status", "unknown")),
                success=success,
                iterations=iters,
                wall_time=time.perf_counter() - wall0,
                solver_time=t_wall,
                solver_cpu_time=t_cpu,
                cpu_time=time.process_time() - cpu0,
                warm=warm,
                retried=retried,
                fallback=fallback,
                predicted_objective=pred,
            )
        )
        return feed

    def _record(self, **fields) -> MPCStepRecord:
        """The record of a step (subclasses add their own fields)."""
        return MPCStepRecord(**fields)


def kink_width(surrogate, settings: MPCSettings) -> float | None:
    """Kink width [mmol/gDW/h] of the MPC's copy of ``surrogate`` (``MPCSettings.network_kink_width``).

    The setting itself when given (0: ``None``, the trained network exactly); by default the
    surrogate's ``kink_reach`` (the width over which a network without kink features rounds a kink
    off) capped at 1 % of the smallest span of its input domain; ``None`` for a surrogate without
    kink features.
    """
    w = settings.network_kink_width
    if w is not None:
        return float(w) if w > 0 else None
    s = getattr(surrogate, "settings", None)
    if not getattr(s, "kink_lines", ()):
        return None
    span = float(np.min(np.asarray(surrogate.domain_high, dtype=float) - np.asarray(surrogate.domain_low, dtype=float)))
    return float(min(s.kink_reach, 0.01 * span))


def build_network_mpc(
    reactor, surrogate, problem: BatchProblem, settings: MPCSettings | None = None, *, x_scale=None, network=None
) -> NetworkMPC:
    """Build the feed MPC with the surrogate network itself in the loop.

    ``settings.backend = "network_taylor"`` gives a :class:`mpc_bio.control.taylor_mpc.TaylorMPC`
    (Taylor models of the network in a compiled NLP, re-linearised), any other backend a
    :class:`NetworkMPC` (the network called from the NLP).

    Parameters
    ----------
    reactor : mpc_bio.process.FedBatchSettings
        The fed-batch (kinetics, products, oxygen mode); the glucose Vmax is the model parameter.
    surrogate : mpc_bio.surrogate.Surrogate
        The trained network; its outputs needed by the fed-batch are evaluated.
    problem : BatchProblem
    settings : MPCSettings, optional
        Horizon, collocation, penalties, IPOPT options, ``torch_threads`` and ``device``.
    x_scale : array_like, optional
        Typical magnitude of each state (the NLP's state variables are divided by it); none by
        default, as in the do-mpc MPC of the scenarios.
    network : mpc_bio.embed.batched.BatchedNetwork, optional
        A prebuilt batched evaluator (outputs in the split model's order); built from
        ``surrogate`` by default.

    Returns
    -------
    NetworkMPC
    """
    from mpc_bio.control.process_adapter import process_roles
    from mpc_bio.embed.batched import BatchedNetwork
    from mpc_bio.process import embed_cell_model
    from mpc_bio.process.model import fedbatch_split

    settings = settings or MPCSettings()
    split = fedbatch_split(reactor, embed_cell_model(surrogate, reactor, backend="native", symbolic="MX"))
    if network is None and settings.network_evaluator == "l4casadi":  # threads pinned by the MPC around each step
        from mpc_bio.embed.l4casadi_batched import L4CasADiBatchedNetwork

        n_points = settings.n_horizon * settings.collocation_deg
        network = L4CasADiBatchedNetwork(
            surrogate, split.output_ids, n_points=n_points, threads=None, kink_width=kink_width(surrogate, settings)
        ).compile()
    elif network is None:
        network = BatchedNetwork(
            surrogate,
            split.output_ids,
            device=None if settings.device == "auto" else settings.device,
            threads=None,
            kink_width=kink_width(surrogate, settings),
        )
    if settings.backend == "network_taylor":
        from mpc_bio.control.taylor_mpc import TaylorMPC

        return TaylorMPC(split, process_roles(reactor), problem, settings, network, x_scale=x_scale)
    return NetworkMPC(split, process_roles(reactor), problem, settings, network, x_scale=x_scale)
