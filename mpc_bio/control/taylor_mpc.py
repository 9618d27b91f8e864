"""Feed MPC with the surrogate network in the loop through per-point Taylor models, re-linearised SQP-style.

The NLP is :class:`mpc_bio.control.network_mpc.NetworkMPC`'s collocation NLP (same variables,
constraints, objective and warm starts) with the network's outputs at each collocation point
replaced by the network's first- or second-order Taylor model (``MPCSettings.taylor_order``)
around an expansion point of the uptakes, v(q) ~ v(q0) + J (q - q0) [+ (q - q0)' H (q - q0) / 2],
whose coefficients enter the NLP as parameters. So the NLP is pure CasADi SX, compiled once, with
exact derivatives and no callbacks, and the network is evaluated only between solves: one batched
torch call (:meth:`mpc_bio.embed.batched.BatchedNetwork.taylor`, value, Jacobian and second
derivatives of all N d points) per outer iteration.

A step runs outer iterations: expand the network at the uptakes of the start (the shifted and
corrected previous solution, or a simulated guess), solve the NLP on the Taylor models, expand
again at the solution's uptakes and solve again, warm started from the previous solution and its
multipliers, until no uptake moved by more than ``MPCSettings.taylor_tol`` (the plan is then a KKT
point of the network's own NLP up to the models' error over that step: value and Jacobian are
exact at the expansion point) or ``MPCSettings.taylor_max_iter`` solves. The first solve of a step
uses first-order models and no bound on the uptakes: its start need not have a solution of the
models near its uptakes (a new state estimate moves the uptakes of the first points; the uptakes
are steep functions of the states, e.g. oxygen uptake of dissolved oxygen with a small Km, so a
simulated guess and the collocation solution can differ much in uptake), and far from the
expansion point a second-order model of a network with kink features is wrong by the square of
the distance times the kinks' curvature, which the optimiser exploits. From the second solve on,
the models have ``MPCSettings.taylor_order`` and each uptake at each collocation point stays within
a trust radius of its expansion point (inequality constraints on the uptakes, their multipliers
shifted with the rest): ``MPCSettings.taylor_trust_radius`` at first, halved (to at most half the
step) whenever the models mispredicted the network at the new uptakes by more than a quarter of
the network's change, doubled after a good prediction whose step hit it. Where the plan rides a
kink line of the network (whose derivatives change sharply across it) an unbounded step can jump
across the line and back; the shrinking radius makes the sequence converge there. A failed solve
after the first ends the step with the last successful one (recorded as not converged). With
``MPCSettings.taylor_max_iter = 1`` a step is one solve on first-order models without trust region,
a real-time iteration: the models are re-expanded at the next step's start. Each
step's record (:class:`TaylorStepRecord`) holds its outer iterations, whether they converged, the
last uptake move and the models' last prediction error; ``iterations`` and the solver times sum
over the inner solves.

The method needs nothing of a particular network or model: any surrogate with a batched evaluator
and any fed-batch split at the network (:func:`mpc_bio.process.model.fedbatch_split`). Build it
with :func:`mpc_bio.control.network_mpc.build_network_mpc` and ``MPCSettings.backend =
"network_taylor"``.
"""

from __future__ import annotations

import dataclasses

import casadi as ca
import numpy as np

from mpc_bio.control.mpc import MPCStepRecord, ipopt_options
from mpc_bio.control.network_mpc import NetworkMPC

__all__ = ["TaylorMPC", "TaylorStepRecord", "taylor_parameters"]

#: the trust radius halves when the models' prediction error at the new uptakes exceeds this
#: fraction of the network's change there, and may grow below a fifth of it
_SHRINK, _GROW = 0.25, 0.05


@dataclasses.dataclass(frozen=True)
class TaylorStepRecord(MPCStepRecord):
    """What one step of :class:`TaylorMPC` did (:class:`MPCStepRecord` plus its outer iterations).

    Attributes
    ----------
    outer_iterations : int
        NLP solves on Taylor models in the step (each followed by one batched torch call).
    outer_converged : bool
        Whether the uptakes stopped moving (``MPCSettings.taylor_tol``) within ``taylor_max_iter`` solves.
    uptake_step : float
        Largest move of an uptake in the last outer iteration [mmol/gDW/h].
    model_error : float
        Largest error of the last Taylor models' prediction at the solution's uptakes, against the
        network there [mmol/gDW/h] (growth [1/h]).
    trust_radius : float
        Trust radius at the end of the step [mmol/gDW/h] (inf: unbounded).
    """

    outer_iterations: int = 0
    outer_converged: bool = False
    uptake_step: float = float("nan")
    model_error: float = float("nan")
    trust_radius: float = float("inf")


def taylor_parameters(coef, order: int) -> np.ndarray:
    """The NLP parameters of the Taylor models at n points: vec Q0, vec V0, the k Jacobian columns, the pairs' Hessians.

    Parameters
    ----------
    coef : mpc_bio.embed.batched.TaylorCoefficients
        Values and derivatives at the expansion points (n, k) (``hessians`` needed for order 2).
    order : {1, 2}

    Returns
    -------
    ndarray
        ``[Q0 (k, n), V0 (r, n), dV/dq_j (r, n) for j < k, d2V/dq_j dq_m (r, n) for j <= m]`` each
        flattened column-major (point by point), the layout of :meth:`TaylorMPC._model`.
    """
    k = coef.points.shape[1]
    parts = [coef.points.reshape(-1), coef.values.reshape(-1)]
    parts += [coef.jacobians[:, :, j].reshape(-1) for j in range(k)]
    if order == 2:
        if coef.hessians is None:
            raise ValueError("taylor_parameters of order 2 needs the coefficients' Hessians (BatchedNetwork.taylor(q, order=2)).")
        parts += [coef.hessians[:, :, j, m].reshape(-1) for j in range(k) for m in range(j, k)]
    return np.concatenate(parts)


class TaylorMPC(NetworkMPC):
    """Economic feed MPC on Taylor models of the network, re-linearised until the step converges.

    Build it with :func:`mpc_bio.control.network_mpc.build_network_mpc` (``MPCSettings.backend =
    "network_taylor"``); same interface as :class:`NetworkMPC`, its ``records`` are
    :class:`TaylorStepRecord`.
    """

    def _model(self, Q, T):
        """The Taylor models' outputs (r, n) at uptakes ``Q`` (k, n) with coefficients ``T`` (SX)."""
        k, n = Q.shape
        r = self.network.n_outputs
        o = 0

        def take(rows):
            nonlocal o
            out = ca.reshape(T[o : o + rows * n], rows, n)
            o += rows * n
            return out

        Q0, V = take(k), take(r)
        dQ = Q - Q0
        for j in range(k):
            V = V + take(r) * ca.repmat(dQ[j, :], r, 1)
        if self.settings.taylor_order == 2:
            for j in range(k):
                for m in range(j, k):
                    V = V + (0.5 if j == m else 1.0) * take(r) * ca.repmat(dQ[j, :] * dQ[m, :], r, 1)
        if o != T.numel():
            raise RuntimeError(f"The Taylor parameters hold {T.numel()} entries, the models use {o}.")
        return V

    def _build_solvers(self, q_fun, g_fun, f_fun) -> None:
        """The NLP on Taylor models (x: w, p: [P, Taylor coefficients]), trust-region rows last, and its solvers."""
        settings = self.settings
        k, n = q_fun.size_out(0)
        r = self.network.n_outputs
        n_coef = (k + r + r * k + (r * k * (k + 1) // 2 if settings.taylor_order == 2 else 0)) * n
        w, P, T = ca.SX.sym("w", q_fun.size1_in(0)), ca.SX.sym("P", q_fun.size1_in(1)), ca.SX.sym("T", n_coef)
        Q = q_fun(w, P)
        g = ca.vertcat(g_fun(w, P, self._model(Q, T)), ca.vec(Q))  # the uptakes: the trust region's rows
        self.nlp = nlp = {"x": w, "p": ca.vertcat(P, T), "f": f_fun(w, P), "g": g}
        self.convexified = False
        self._k, self._n = k, n
        self._n_base_g = self._lbg.size
        self._q_num = q_fun
        cold, warm = ipopt_options(settings)
        self._S_cold = ca.nlpsol("network_taylor_mpc", "ipopt", nlp, cold)
        self._S_warm = ca.nlpsol("network_taylor_mpc_warm", "ipopt", nlp, warm) if settings.warm_start else self._S_cold
        self._outer: list[dict] = []

    def _uptakes(self, w: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Uptakes (n, k) at the collocation points of the decision vector ``w``."""
        return np.asarray(self._q_num(w, P)).T.copy()

    def _shift(self):
        """As :meth:`NetworkMPC._shift`, the trust region's multipliers shifted one interval too."""
        full = self._lam_g
        self._lam_g = full[: self._n_base_g]
        try:
            w, lx, lg = super()._shift()
        finally:
            self._lam_g = full
        d, k = self.settings.collocation_deg, self._k
        tail = full[self._n_base_g :].reshape(self._n, k)
        return w, lx, np.r_[lg, np.concatenate([tail[d:], tail[-d:]]).reshape(-1)]

    def _radius0(self) -> float:
        """Initial trust radius [mmol/gDW/h]: the setting, or 5 % of the network's smallest input span."""
        if self.settings.taylor_trust_radius is not None:
            return float(self.settings.taylor_trust_radius)
        span = np.min(np.asarray(self.network.domain_high, dtype=float) - np.asarray(self.network.domain_low, dtype=float))
        return max(10.0 * self.settings.taylor_tol, 0.05 * float(span))

    def _solve(self, solver, P, x0, lam_x0=None, lam_g0=None):
        """Outer iterations from ``x0``: solve on Taylor models at the uptakes, re-expand at the solution's, repeat."""
        from mpc_bio.interrupts import check_interrupt

        s = self.settings
        order, tol = s.taylor_order, s.taylor_tol
        radius = self._radius0()
        floor = 10.0 * tol  # a step held by the radius is never taken for convergence
        w = np.asarray(x0, dtype=float).reshape(-1)
        coef = self.network.taylor(self._uptakes(w, P), order)
        n_first = (self._k + self.network.n_outputs * (1 + self._k)) * self._n  # the first-order coefficients
        start = {"x0": w}
        if lam_x0 is not None and lam_g0 is not None:
            start.update(lam_x0=lam_x0, lam_g0=lam_g0)
        total = {"iter_count": 0, "t_wall_total": 0.0, "t_proc_total": 0.0}
        best = None  # the last successful solve and its stats
        info = {"outer_iterations": 0, "outer_converged": False, "uptake_step": np.nan, "model_error": np.nan, "trust_radius": radius}
        # elastic: first-order models, no trust region (a first solve that failed within the radius is repeated so;
        # with taylor_max_iter = 1 the only solve is, a real-time iteration)
        elastic = s.taylor_max_iter == 1
        for it in range(s.taylor_max_iter):
            T = taylor_parameters(coef, order)
            if elastic:
                T[n_first:] = 0.0
            q0 = coef.points.reshape(-1)  # vec Q0 (k, n): point by point
            bound = np.inf if elastic else radius
            lbg = np.r_[self._lbg, q0 - bound]
            ubg = np.r_[self._ubg, q0 + bound]
            sol = solver(p=np.r_[P, T], lbx=self._lbx, ubx=self._ubx, lbg=lbg, ubg=ubg, **start)
            check_interrupt()  # IPOPT turned Ctrl-C/SIGTERM into a failed status: stop
            st = solver.stats()
            total["iter_count"] += int(st.get("iter_count", 0))
            total["t_wall_total"] += float(st.get("t_wall_total", np.nan))
            total["t_proc_total"] += float(st.get("t_proc_total", np.nan))
            info["outer_iterations"] = it + 1
            if not st.get("success", False):
                info.setdefault("history", []).append((int(st.get("iter_count", 0)), np.nan, np.nan, np.nan, bound))
                if best is None and not elastic:
                    elastic = True
                    continue
                break  # the last successful solve stands (a failure of the elastic one fails the step)
            elastic = False
            best = (sol, st)
            w = np.asarray(sol["x"]).reshape(-1)
            q_new = self._uptakes(w, P)
            new = self.network.taylor(q_new, order)
            step = float(np.max(np.abs(q_new - coef.points)))
            pred = coef.values + np.einsum("nrk,nk->nr", coef.jacobians, q_new - coef.points)
            if order == 2 and not np.isinf(bound):
                pred = coef.predict(q_new)
            err = float(np.max(np.abs(new.values - pred)))
            change = float(np.max(np.abs(new.values - coef.values)))
            info.update(uptake_step=step, model_error=err)
            info.setdefault("history", []).append((int(st.get("iter_count", 0)), step, err, change, bound))
            if step <= tol:
                info["outer_converged"] = True
                break
            if err > _SHRINK * change:
                radius = max(floor, 0.5 * min(step, radius))
            elif err < _GROW * change and step >= 0.9 * radius:
                radius = 2.0 * radius
            info["trust_radius"] = radius
            coef = new
            start = {"x0": w, "lam_x0": np.asarray(sol["lam_x"]).reshape(-1), "lam_g0": np.asarray(sol["lam_g"]).reshape(-1)}
            solver = self._S_warm
        self._outer.append(info)
        if best is None:
            return sol, {**st, **total}
        sol, st = best
        return sol, {**st, **total, "success": True, "return_status": st.get("return_status", "unknown")}

    def step(self, x_hat, t: float, params=None) -> float:  # noqa: D102 (NetworkMPC.step)
        self._outer = []
        return super().step(x_hat, t, params)

    step.__doc__ = NetworkMPC.step.__doc__

    def _record(self, **fields) -> TaylorStepRecord:
        outer = self._outer
        last = outer[-1] if outer else {}
        return TaylorStepRecord(
            **fields,
            outer_iterations=sum(o["outer_iterations"] for o in outer),
            outer_converged=bool(last.get("outer_converged", False)),
            uptake_step=float(last.get("uptake_step", np.nan)),
            model_error=float(last.get("model_error", np.nan)),
            trust_radius=float(last.get("trust_radius", np.inf)),
        )
