"""The control view of a fed-batch process model: a CasADi right-hand side plus the roles of its variables.

A :class:`ControlModel` is ``rhs(x, u, p) -> dx/dt`` as a ``casadi.Function`` with the state,
input and parameter names and their roles (volume, glucose, biomass, ...): the fed-batch model of
:mod:`mpc_bio.process` (:func:`mpc_bio.control.control_model_from_process`), the kinetic reactor
of co-design, or any closed-form system written as a CasADi function. The MPC, the estimators, the offline optimiser and the baselines all build on it,
so they stay independent of how the process model was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import casadi as ca
import numpy as np

from mpc_bio.control.settings import BatchProblem, ControlError, ReactorRoles

__all__ = [
    "ControlModel",
    "make_integrator",
    "simulate_feed",
    "Trajectory",
    "objective_value",
    "constraint_margins",
]


@dataclass(frozen=True, eq=False)
class ControlModel:
    """A fed-batch model seen by the controller.

    Attributes
    ----------
    rhs : casadi.Function
        ``(x[n_x], u[1], p[n_p]) -> dx/dt[n_x]``, states in the units of ``state_names``
        (L, mmol, gDW), feed in L/h, time in h.
    state_names : tuple of str
        Names of the states, in order.
    input_name : str
        Name of the feed-rate input.
    param_names : tuple of str
        Names of the model parameters, in order.
    param_values : ndarray
        Nominal parameter values.
    roles : ReactorRoles
        Which states/inputs/parameters are volume, glucose, biomass, acetate, product, feed, Vmax.
    symvar : str
        ``"SX"`` or ``"MX"``: symbol type the right-hand side can be called with.
    aux : casadi.Function or None
        Optional ``(x, u, p) -> named auxiliary outputs`` (e.g. growth rate) for plots.
    aux_names : tuple of str
        Names of the ``aux`` outputs.
    param_bounds : ndarray, shape (n_p, 2)
        Lower and upper bound of each parameter where the model is valid, in the parameter's
        units (e.g. the glucose Vmax within the surrogate's glucose-uptake domain, mmol/gDW/h);
        estimators keep their parameter estimates inside. Default ``[0, inf)``.
    """

    rhs: ca.Function
    state_names: tuple[str, ...]
    input_name: str
    param_names: tuple[str, ...]
    param_values: np.ndarray
    roles: ReactorRoles
    symvar: str = "SX"
    aux: ca.Function | None = None
    aux_names: tuple[str, ...] = field(default_factory=tuple)
    param_bounds: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = set(self.state_names)
        for role in ("volume", "glucose", "biomass", "acetate", "product"):
            name = getattr(self.roles, role)
            if name is not None and name not in names:
                if role in ("acetate", "product"):
                    object.__setattr__(self, "roles", _replace_role(self.roles, role, None))
                    continue
                raise ControlError(
                    f"The {role} state {name!r} named in ReactorRoles is not a state of the model; states are {list(self.state_names)}."
                )
        if self.roles.feed != self.input_name:
            raise ControlError(f"The feed input {self.roles.feed!r} named in ReactorRoles is not the model's input {self.input_name!r}.")
        if self.roles.vmax is not None and self.roles.vmax not in self.param_names:
            object.__setattr__(self, "roles", _replace_role(self.roles, "vmax", None))
        pv = np.asarray(self.param_values, dtype=float).reshape(-1)
        if pv.size != len(self.param_names):
            raise ControlError(
                f"param_values has {pv.size} entries but the model has {len(self.param_names)} parameters {self.param_names}."
            )
        object.__setattr__(self, "param_values", pv)
        if self.param_bounds is None:
            pb = np.column_stack([np.zeros(pv.size), np.full(pv.size, np.inf)])
        else:
            pb = np.asarray(self.param_bounds, dtype=float).reshape(-1, 2) if pv.size else np.zeros((0, 2))
        if pb.shape != (pv.size, 2) or np.any(pb[:, 0] > pb[:, 1]) or np.any((pv < pb[:, 0]) | (pv > pb[:, 1])):
            raise ControlError(
                f"param_bounds must be one (low, high) pair per parameter {list(self.param_names)} with low <= "
                f"nominal value <= high. Got {pb.tolist()} for nominal values {pv.tolist()} instead."
            )
        object.__setattr__(self, "param_bounds", pb)

    @property
    def n_x(self) -> int:
        return len(self.state_names)

    @property
    def n_p(self) -> int:
        return len(self.param_names)

    def index(self, role: str) -> int | None:
        """Index of the state playing ``role`` (``"volume"``, ``"glucose"``, ...), or None."""
        name = getattr(self.roles, role)
        return None if name is None else self.state_names.index(name)

    def param_index(self, name: str) -> int:
        """Index of the parameter ``name``."""
        if name not in self.param_names:
            raise ControlError(f"Unknown model parameter {name!r}; parameters are {list(self.param_names)}.")
        return self.param_names.index(name)

    def params_with(self, scale: dict[str, float] | tuple = ()) -> np.ndarray:
        """Nominal parameters with some scaled by the given factors."""
        p = self.param_values.copy()
        for name, factor in dict(scale).items():
            p[self.param_index(name)] *= float(factor)
        return p


def _replace_role(roles: ReactorRoles, role: str, value) -> ReactorRoles:
    data = {k: getattr(roles, k) for k in roles.__dataclass_fields__}
    data[role] = value
    return ReactorRoles(**data)


def make_integrator(model: ControlModel, dt: float, *, n_out: int = 1, reltol: float = 1e-8, abstol: float = 1e-10):
    """A CVODES integrator of the model over ``dt`` h with constant feed; params ``[u; p]``.

    With ``n_out > 1`` it returns the states at ``n_out`` equally spaced times in (0, dt].
    """
    sym = ca.MX if model.symvar == "MX" else ca.SX
    x = sym.sym("x", model.n_x)
    u = sym.sym("u", 1)
    p = sym.sym("p", model.n_p)
    dae = {"x": x, "p": ca.vertcat(u, p), "ode": model.rhs(x, u, p)}
    grid = np.linspace(0.0, dt, n_out + 1)[1:]
    opts = {"reltol": reltol, "abstol": abstol, "max_num_steps": 20000}
    return ca.integrator("plant", "cvodes", dae, 0.0, grid, opts)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A simulated open-loop trajectory.

    Attributes
    ----------
    time : ndarray, shape (n,)
        Times [h].
    states : ndarray, shape (n, n_x)
        States at those times (units of ``state_names``).
    feed : ndarray, shape (n,)
        Feed rate applied from each time to the next [L/h] (last entry repeats).
    state_names : tuple of str
    objective : float
        Value of the batch objective at the end.
    violation : float
        Largest relative constraint violation (volume, glucose, acetate) along the trajectory [-].
    """

    time: np.ndarray
    states: np.ndarray
    feed: np.ndarray
    state_names: tuple[str, ...]
    objective: float
    violation: float
    volume_state: str = "V"

    def concentration(self, state: str) -> np.ndarray:
        """Concentration ``state / V`` along the trajectory (mmol/L or gDW/L)."""
        iv = self.state_names.index(self.volume_state)
        return self.states[:, self.state_names.index(state)] / self.states[:, iv]


def objective_value(model: ControlModel, problem: BatchProblem, x_end: np.ndarray) -> float:
    """The batch objective (to be maximised) at the final state.

    ``biomass``: gDW; ``product``: mmol; ``productivity``: gDW/L/h.
    """
    x_end = np.asarray(x_end, dtype=float).reshape(-1)
    if problem.objective == "biomass":
        return float(x_end[model.index("biomass")])
    if problem.objective == "product":
        i = model.index("product")
        if i is None:
            raise ControlError("The 'product' objective needs ReactorRoles.product to name a state of the model.")
        return float(x_end[i])
    return float(x_end[model.index("biomass")] / x_end[model.index("volume")] / problem.batch_time)


def constraint_margins(model: ControlModel, problem: BatchProblem, states: np.ndarray) -> dict[str, np.ndarray]:
    """Relative margins to the volume, glucose and acetate limits (positive = inside) [-]."""
    states = np.atleast_2d(states)
    vol = states[:, model.index("volume")]
    out = {"volume": 1.0 - vol / problem.volume_max}
    out["glucose"] = 1.0 - states[:, model.index("glucose")] / vol / problem.glucose_max
    ia = model.index("acetate")
    if ia is not None:
        out["acetate"] = 1.0 - states[:, ia] / vol / problem.acetate_max
    return out


def _violation(model, problem, states) -> float:
    return float(max(0.0, max(-np.min(m) for m in constraint_margins(model, problem, states).values())))


def simulate_feed(
    model: ControlModel,
    problem: BatchProblem,
    x0,
    feed_fn,
    *,
    dt: float = 0.05,
    params=None,
    stop_at_volume_max: bool = True,
) -> Trajectory:
    """Simulate the batch under a feed law ``feed_fn(t, x) -> F`` [L/h], held over steps of ``dt`` h.

    The feed is clipped to the problem's bounds. With ``stop_at_volume_max`` the feed is reduced
    so the volume never exceeds ``volume_max`` (the classical way baselines respect the volume
    limit). Small negative amounts produced by the integrator are clipped at zero.
    """
    params = model.param_values if params is None else np.asarray(params, dtype=float)
    n = int(round(problem.batch_time / dt))
    if n < 1 or abs(n * dt - problem.batch_time) > 1e-9 * problem.batch_time:
        raise ControlError(f"The simulation step dt={dt} h must divide the batch time {problem.batch_time} h.")
    integ = make_integrator(model, dt)
    iv = model.index("volume")
    x = np.asarray(x0, dtype=float).reshape(-1).copy()
    times = [0.0]
    states = [x.copy()]
    feeds = []
    for k in range(n):
        t = k * dt
        f = float(np.clip(feed_fn(t, x), problem.feed_min, problem.feed_max))
        if stop_at_volume_max:
            f = max(problem.feed_min, min(f, (problem.volume_max - x[iv]) / dt))
        x = np.maximum(np.asarray(integ(x0=x, p=np.r_[f, params])["xf"]).reshape(-1), 0.0)
        feeds.append(f)
        times.append(t + dt)
        states.append(x.copy())
    feeds.append(feeds[-1])
    states = np.array(states)
    return Trajectory(
        time=np.array(times),
        states=states,
        feed=np.array(feeds),
        state_names=model.state_names,
        objective=objective_value(model, problem, states[-1]),
        violation=_violation(model, problem, states),
        volume_state=model.roles.volume,
    )
