"""The surrogate network in a collocation NLP built for one batched torch call per derivative order.

Design (b) of the network in the MPC loop: the feed MPC's direct-collocation NLP written in CasADi (not through
do-mpc, which evaluates its model once per collocation point), with the network's inputs at all
N x d collocation points gathered into one (k, N d) matrix and evaluated by one batched call
(:func:`mpc_bio.embed.batched.batched_casadi_function`: exact block-diagonal Jacobian and
second derivatives, value, Jacobian and Hessian of the same point set from one torch call).
Everything else (kinetics, balances, constraints) stays in CasADi.

The NLP is the one of :func:`mpc_bio.control.taylor_mpc.build_network_mpc` (and of
:mod:`mpc_bio.control.mpc`): Radau collocation of degree d, the nodes lifted as separate variables with
continuity constraints (as do-mpc does; substituting them by the last collocation point, tau_d = 1,
gives the same solution but IPOPT needed several times more iterations after a shift), economic Mayer term at the end of the horizon scaled by
``objective_scale``, feed-move penalty, feed bounds, lower bounds on the amounts at the nodes and
collocation points of intervals 0..N-2 and at the final node, soft volume/glucose/acetate limits
with a backoff at the start of every interval (one slack per interval and limit, linear penalty).
"""

from __future__ import annotations

import time

import casadi as ca
import numpy as np

from mpc_bio.control.settings import BatchProblem, ControlError, MPCSettings
from mpc_bio.control.taylor_mpc import NetworkStepRecord, SplitFedBatch, radau_times

__all__ = ["BatchedCollocationMPC", "build_batched_mpc"]


def _collocation_matrices(tau: np.ndarray) -> np.ndarray:
    """C[r, j] = dL_r/dtau at tau_j for the nodes [0, tau_1..tau_d] (do-mpc's convention)."""
    nodes = np.r_[0.0, tau]
    n = nodes.size
    C = np.zeros((n, n))
    for r in range(n):
        coeffs = np.poly1d([1.0])
        for m in range(n):
            if m != r:
                coeffs *= np.poly1d([1.0, -nodes[m]]) / (nodes[r] - nodes[m])
        dp = np.polyder(coeffs)
        C[r] = dp(nodes)
    return C


class BatchedCollocationMPC:
    """Feed MPC whose collocation NLP evaluates the network once per IPOPT evaluation, for all points.

    Build it with :func:`build_batched_mpc`; :meth:`reset`, then :meth:`step` at every sample.

    Attributes
    ----------
    records : list of NetworkStepRecord
    solver : casadi.Function
        The IPOPT solver (cold-start options); ``solver_warm`` has the warm-start options.
    """

    def __init__(self, split: SplitFedBatch, problem: BatchProblem, settings: MPCSettings, network,
                 flux_function=None) -> None:
        from mpc_bio.embed.batched import batched_casadi_function

        if settings.collocation_ni != 1:
            raise ControlError("build_batched_mpc supports collocation_ni = 1 only.")
        if tuple(network.output_ids) != tuple(split.output_ids):
            raise ControlError(
                f"The batched network's outputs {list(network.output_ids)} must be the split model's {list(split.output_ids)}."
            )
        self.split, self.problem, self.settings, self.network = split, problem, settings, network
        self.records: list[NetworkStepRecord] = []
        N, d, dt = settings.n_horizon, settings.collocation_deg, settings.t_step
        nx, npar = split.n_x, len(split.param_names)
        self._tau = tau = radau_times(d)
        C = _collocation_matrices(tau)
        names, roles = split.state_names, split.roles
        iv, ig, ib = names.index(roles.volume), names.index(roles.glucose), names.index(roles.biomass)
        ia = names.index(roles.acetate) if roles.acetate is not None else None
        if flux_function is None:
            self._batched = batched_casadi_function(network, N * d, name="network_horizon")
        else:  # a CasADi graph of the network at every point (the same NLP, for comparison)
            self._batched = flux_function.map(N * d)

        U = ca.MX.sym("U", 1, N)
        Xc = ca.MX.sym("Xc", nx, N * d)
        Xn = ca.MX.sym("Xn", nx, N + 1)  # the nodes, lifted as in do-mpc (continuity constraints)
        n_soft = 3 if ia is not None else 2
        E = ca.MX.sym("eps", n_soft, N)
        x0 = ca.MX.sym("x0", nx)
        u_prev = ca.MX.sym("u_prev")
        p = ca.MX.sym("p", npar)
        flag = ca.MX.sym("flag", 1, N)
        Q = split.uptakes.map(N * d)(Xc, ca.repmat(p, 1, N * d))
        V = self._batched(Q)
        Urep = ca.kron(U, ca.DM.ones(1, d))
        Frep = ca.kron(flag, ca.DM.ones(1, d))
        Fx = split.rhs.map(N * d)(Xc, Urep, ca.repmat(p, 1, N * d), V) * ca.repmat(Frep, nx, 1)
        g, lbg, ubg = [Xn[:, 0] - x0], [np.zeros(nx)], [np.zeros(nx)]
        obj = 0
        b = settings.backoff
        ub_soft = [problem.volume_max, (1 - b) * problem.glucose_max] + ([(1 - b) * problem.acetate_max] if ia is not None else [])
        for k in range(N):
            node = Xn[:, k]
            pts = [node] + [Xc[:, k * d + j] for j in range(d)]
            for j in range(1, d + 1):
                xp = sum(C[r, j] * pts[r] for r in range(d + 1))
                g.append(dt * Fx[:, k * d + j - 1] - xp)
                lbg.append(np.zeros(nx))
                ubg.append(np.zeros(nx))
            g.append(Xn[:, k + 1] - Xc[:, (k + 1) * d - 1])  # continuity (tau_d = 1)
            lbg.append(np.zeros(nx))
            ubg.append(np.zeros(nx))
            vol = node[iv]
            soft = [vol, node[ig] / vol] + ([node[ia] / vol] if ia is not None else [])
            g.append(ca.vertcat(*soft) - E[:, k])
            lbg.append(np.full(n_soft, -np.inf))
            ubg.append(np.array(ub_soft))
            obj = obj + settings.soft_penalty / settings.objective_scale * ca.sum1(E[:, k])
            du = U[0, k] - (u_prev if k == 0 else U[0, k - 1])
            obj = obj + settings.move_penalty / settings.objective_scale * du**2
        xN = Xn[:, N]
        if problem.objective == "biomass":
            mayer = xN[ib]
        elif problem.objective == "product":
            if roles.product is None:
                raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
            mayer = xN[names.index(roles.product)]
        else:
            mayer = xN[ib] / xN[iv] / problem.batch_time
        obj = obj - mayer / settings.objective_scale
        self._w = ca.vertcat(ca.vec(Xc), ca.vec(U), ca.vec(E), ca.vec(Xn))
        self._nw = (nx * N * d, N, n_soft * N, nx * (N + 1))
        P = ca.vertcat(x0, u_prev, p, flag.T)
        nlp = {"x": self._w, "p": P, "f": obj, "g": ca.vertcat(*g)}
        self._lbg, self._ubg = np.concatenate(lbg), np.concatenate(ubg)
        self._gblock = nx * d + nx + n_soft
        # bounds: amounts >= 0 (volume >= 1e-6) at intervals 0..N-2 and at the final node
        lbx_x = np.full((N * d, nx), -np.inf)
        lo = np.full(nx, -np.inf)
        for role in ("glucose", "biomass", "acetate", "product"):
            n = getattr(roles, role)
            if n is not None:
                lo[names.index(n)] = 0.0
        lo[iv] = 1e-6
        lbx_x[: (N - 1) * d] = lo
        lbx_n = np.full((N + 1, nx), -np.inf)
        lbx_n[1:] = lo
        self._lbx = np.concatenate([lbx_x.reshape(-1), np.full(N, problem.feed_min), np.zeros(n_soft * N), lbx_n.reshape(-1)])
        self._ubx = np.concatenate([np.full(nx * N * d, np.inf), np.full(N, problem.feed_max), np.full(n_soft * N, np.inf),
                                    np.full(nx * (N + 1), np.inf)])
        opts = {
            "ipopt.max_iter": settings.max_iter,
            "ipopt.tol": settings.tol,
            "ipopt.print_level": 0,
            "ipopt.sb": "yes",
            "print_time": 0,
            "record_time": True,
            "ipopt.linear_solver": settings.linear_solver,
        }
        warm = {
            **opts,
            "ipopt.warm_start_init_point": "yes",
            "ipopt.warm_start_bound_push": 1e-6,
            "ipopt.warm_start_mult_bound_push": 1e-6,
            "ipopt.mu_init": 1e-4,
        }
        self.solver = ca.nlpsol("batched_mpc", "ipopt", nlp, opts)
        self.solver_warm = ca.nlpsol("batched_mpc_warm", "ipopt", nlp, warm)
        self._n_soft = n_soft
        #: warm start with the shifted multipliers and IPOPT's warm-start options (else primal only)
        self.warm_multipliers = True
        self._ia = ia
        self._p_now = split.param_values.copy()
        self._u_prev = 0.0
        self._sol = None
        self._lam_x = None
        self._lam_g = None
        self._plan = None
        self._plan_time = 0.0
        self._integ = None

    @property
    def failures(self) -> int:
        """Number of steps whose solve failed (and used the fallback)."""
        return sum(1 for r in self.records if not r.success)

    def reset(self, x0, u0: float = 0.0, guess_feed=None) -> None:
        """Start a batch (as :meth:`mpc_bio.control.taylor_mpc.NetworkMPC.reset`)."""
        self.records = []
        self._u_prev = float(u0)
        self._sol = self._lam_x = self._lam_g = None
        self._plan = None
        N = self.settings.n_horizon
        if guess_feed is not None:
            g = np.asarray(guess_feed, dtype=float).reshape(-1)
            g = np.broadcast_to(g, (N,)).copy() if g.size == 1 else np.resize(g, N)
            self._plan, self._plan_time = np.clip(g, self.problem.feed_min, self.problem.feed_max), 0.0

    def _split_w(self, w: np.ndarray):
        a, b, c, _ = self._nw
        nx, N, d = self.split.n_x, self.settings.n_horizon, self.settings.collocation_deg
        return (w[:a].reshape(N * d, nx).T, w[a : a + b], w[a + b : a + b + c].reshape(N, self._n_soft).T,
                w[a + b + c :].reshape(N + 1, nx).T)

    def _pack(self, Xc, U, E, Xn) -> np.ndarray:
        return np.concatenate([np.asarray(Xc).T.reshape(-1), np.asarray(U).reshape(-1), np.asarray(E).T.reshape(-1),
                               np.asarray(Xn).T.reshape(-1)])

    def _guess(self, x0: np.ndarray, t: float) -> np.ndarray:
        N, d, dt = self.settings.n_horizon, self.settings.collocation_deg, self.settings.t_step
        feeds = self._plan_from(x0, t)
        if self._integ is None:
            f = self.split.native_rhs("SX")
            x, u, p = ca.SX.sym("x", self.split.n_x), ca.SX.sym("u"), ca.SX.sym("p", len(self.split.param_names))
            self._integ = ca.integrator(
                "guess", "cvodes", {"x": x, "p": ca.vertcat(u, p), "ode": f(x, u, p)}, 0.0,
                [float(s) * dt for s in self._tau], {"reltol": 1e-6, "abstol": 1e-9, "max_num_steps": 20000},
            )
        x = np.maximum(x0, 0.0)
        Xc = np.zeros((self.split.n_x, N * d))
        Xn = np.zeros((self.split.n_x, N + 1))
        Xn[:, 0] = x
        E = np.zeros((self._n_soft, N))
        for k in range(N):
            E[:, k] = self._soft_violation(x)
            traj = np.repeat(x[None], d, axis=0)
            if t + k * dt < self.problem.batch_time - 1e-9:
                try:
                    traj = np.maximum(np.asarray(self._integ(x0=x, p=np.r_[feeds[k], self._p_now])["xf"]).T, 0.0)
                except RuntimeError:
                    pass
            Xc[:, k * d : (k + 1) * d] = traj.T
            x = traj[-1]
            Xn[:, k + 1] = x
        return self._pack(Xc, feeds, E, Xn)

    def _soft_violation(self, x) -> np.ndarray:
        names, roles, pb, b = self.split.state_names, self.split.roles, self.problem, self.settings.backoff
        vol = max(float(x[names.index(roles.volume)]), 1e-9)
        viol = [vol - pb.volume_max, x[names.index(roles.glucose)] / vol - (1 - b) * pb.glucose_max]
        if self._ia is not None:
            viol.append(x[self._ia] / vol - (1 - b) * pb.acetate_max)
        return np.maximum(np.array(viol), 0.0)

    def _plan_from(self, x_hat: np.ndarray, t: float) -> np.ndarray:
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

    def _shift(self, w: np.ndarray, lam_x: np.ndarray, lam_g: np.ndarray):
        d = self.settings.collocation_deg

        def sh(v):
            Xc, U, E, Xn = self._split_w(v)
            Xc = np.concatenate([Xc[:, d:], Xc[:, -d:]], axis=1)
            U = np.r_[U[1:], U[-1]]
            E = np.concatenate([E[:, 1:], E[:, -1:]], axis=1)
            Xn = np.concatenate([Xn[:, 1:], Xn[:, -1:]], axis=1)
            return self._pack(Xc, U, E, Xn)

        nx = self.split.n_x
        G = lam_g[nx:].reshape(self.settings.n_horizon, self._gblock)
        return sh(w), sh(lam_x), np.r_[lam_g[:nx], np.concatenate([G[1:], G[-1:]]).reshape(-1)]

    def step(self, x_hat, t: float, params=None) -> float:
        """Solve from the state estimate ``x_hat`` at time ``t`` [h]; return the feed to apply [L/h]."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        x_hat = np.maximum(np.asarray(x_hat, dtype=float).reshape(-1), 0.0)
        if x_hat.size != self.split.n_x:
            raise ControlError(f"x_hat has {x_hat.size} entries, the model has {self.split.n_x} states.")
        if params is not None:
            self._p_now = np.asarray(params, dtype=float).reshape(-1)
        t = float(t)
        N, dt = self.settings.n_horizon, self.settings.t_step
        flags = np.array([1.0 if t + k * dt < self.problem.batch_time - 1e-9 else 0.0 for k in range(N)])
        P = np.r_[x_hat, self._u_prev, self._p_now, flags]
        warm = self.settings.warm_start and self._sol is not None
        calls0, net0 = self.network.calls, self.network.wall_time
        self._x_now = x_hat
        if warm:
            w0, lx, lg = self._shift(self._sol, self._lam_x, self._lam_g)
            if self.warm_multipliers:
                args, S = dict(x0=w0, lam_x0=lx, lam_g0=lg), self.solver_warm
            else:  # shifted primal solution, IPOPT's cold-start options
                args, S = dict(x0=w0), self.solver
        else:
            args = dict(x0=self._guess(x_hat, t))
            S = self.solver
        sol = S(p=P, lbx=self._lbx, ubx=self._ubx, lbg=self._lbg, ubg=self._ubg, **args)
        st = S.stats()
        success = bool(st.get("success", False))
        status = str(st.get("return_status", "unknown"))
        w = np.asarray(sol["x"]).reshape(-1)
        Xc, U, _, Xn = self._split_w(w)
        fallback = ""
        if success:
            feed = float(np.clip(U[0], self.problem.feed_min, self.problem.feed_max))
            self._sol, self._lam_x, self._lam_g = w, np.asarray(sol["lam_x"]).reshape(-1), np.asarray(sol["lam_g"]).reshape(-1)
            self._plan, self._plan_time = U.copy(), t
            xN = Xn[:, -1]
            names, roles = self.split.state_names, self.split.roles
            pred = float(xN[names.index(roles.biomass)])
            if self.problem.objective == "product":
                pred = float(xN[names.index(roles.product)])
            elif self.problem.objective == "productivity":
                pred = pred / float(xN[names.index(roles.volume)]) / self.problem.batch_time
        else:
            k = int(round((t - self._plan_time) / dt)) if self._plan is not None else -1
            if self._plan is not None and 0 <= k < self._plan.size:
                feed, fallback = float(self._plan[k]), "shifted_plan"
            else:
                feed, fallback = float(self.settings.safe_feed), "safe_feed"
            feed = float(np.clip(feed, self.problem.feed_min, self.problem.feed_max))
            self._sol = None
            pred = float("nan")
        self._u_prev = feed
        self.records.append(
            NetworkStepRecord(
                time=t, feed=feed, status=status, success=success, iterations=int(st.get("iter_count", -1)),
                relinearisations=self.network.calls - calls0, solves=1, q_change=float("nan"),
                wall_time=time.perf_counter() - wall0, cpu_time=time.process_time() - cpu0,
                network_time=self.network.wall_time - net0, warm=warm, fallback=fallback,
                predicted_objective=pred,
            )
        )
        return feed

    def plan(self) -> np.ndarray:
        """Feed plan of the last successful solve, one value per interval [L/h]."""
        return np.array([]) if self._plan is None else self._plan.copy()

    def predicted_states(self) -> np.ndarray:
        """States (N + 1, n_x) at the interval boundaries of the last solution (model units)."""
        if self._sol is None:
            return np.zeros((0, self.split.n_x))
        return self._split_w(self._sol)[3].T.copy()


def build_batched_mpc(
    split: SplitFedBatch, problem: BatchProblem, settings: MPCSettings | None, network, *, flux_function=None
) -> BatchedCollocationMPC:
    """Build the collocation MPC with one batched network call per evaluation (design (b)).

    Parameters
    ----------
    split : SplitFedBatch
        The fed-batch model split at the network.
    problem : BatchProblem
    settings : MPCSettings, optional
    network : mpc_bio.embed.batched.BatchedNetwork
        Outputs ``split.output_ids``; its device and thread pinning apply inside IPOPT.
    flux_function : casadi.Function, optional
        Instead of the batched torch call, this CasADi function ``q -> v`` (e.g. the native graph)
        mapped over the points: the same NLP with the network embedded as a graph.
    """
    return BatchedCollocationMPC(split, problem, settings or MPCSettings(), network, flux_function=flux_function)
