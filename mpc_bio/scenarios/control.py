"""Scenario kinds of the control stage, run by ``mpc-bio run SCENARIO.toml``.

``kind = "closed_loop"``       MPC + estimator on the plant, compared with the offline optimum (on
                               the plant's own parameters when ``plant = "perturbed"``).
``kind = "feed_optimization"`` offline optimum vs the tuned constant and exponential feeds.
``kind = "mpc_mismatch"``      closed loop on a mismatched plant (perturbed kinetics or the
                               LP-in-the-loop dFBA), compared with the offline (nominal) profile
                               applied open loop to the same plant.

Tables: ``[model]``, ``[surrogate]``, ``[reactor]``, ``[kinetics]`` as in ``kind = "simulation"``
(the reactor's initial state is the batch's start); ``[problem]``, ``[mpc]``, ``[estimator]``,
``[measurements]``, ``[closed_loop]``, ``[offline]``, ``[baselines]`` hold the fields of the
settings classes of :mod:`mpc_bio.control.settings` (``[closed_loop]`` and ``[offline]`` also
those of :class:`LoopOptions` and :class:`OfflineOptions`; ``[baselines].feed_glucose`` defaults
to the reactor's), ``[control_model]`` those of :class:`ControlModelOptions`. The scenario schema
(:mod:`mpc_bio.scenarios.kinds`) reads the same classes; the runners receive the file as
validated and resolved by :mod:`mpc_bio.scenarios.runner`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mpc_bio.control.settings import (
    BaselineSettings,
    BatchProblem,
    ClosedLoopSettings,
    ControlError,
    EstimatorSettings,
    MeasurementSettings,
    MPCSettings,
    OfflineSettings,
)
from mpc_bio.settings import POSITIVE, Settings, setting

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "run_closed_loop_scenario",
    "run_feed_optimization_scenario",
    "run_mpc_mismatch_scenario",
    "load_control_setup",
    "control_setup",
    "LoopOptions",
    "OfflineOptions",
    "ControlModelOptions",
]

_CONTROL_TABLES = ("problem", "mpc", "estimator", "measurements", "closed_loop", "offline", "baselines", "control_model")
_PROCESS_TABLES = ("model", "surrogate", "reactor", "kinetics")


@dataclasses.dataclass(frozen=True)
class LoopOptions(Settings):
    """What a control scenario's ``[closed_loop]`` holds beside :class:`~mpc_bio.control.ClosedLoopSettings`."""

    error: ClassVar[type] = ControlError

    rmse_after: float = setting(2.0, unit="h", low=0.0, doc="Estimation RMSE is reported from this time on.")
    relax: bool = setting(True, doc='Relax infeasible LPs of the dFBA plant (plant = "dfba").')


@dataclasses.dataclass(frozen=True)
class OfflineOptions(Settings):
    """What a control scenario's ``[offline]`` holds beside :class:`~mpc_bio.control.OfflineSettings`."""

    error: ClassVar[type] = ControlError

    compare: bool = setting(True, doc='Compare with the offline optimum (kind "closed_loop").')


@dataclasses.dataclass(frozen=True)
class ControlModelOptions(Settings):
    """The model the controller and the estimator use (``[control_model]``): the full surrogate or its
    B-spline distillation over the uptake inputs (:mod:`mpc_bio.control.distill`; a 2-D grid over glucose
    and oxygen uptake in ``"kla"`` oxygen mode, where both move). The plant and the offline optimum
    keep the full surrogate; outside the grid the spline holds its boundary values and the summary
    counts such steps."""

    error: ClassVar[type] = ControlError

    distill: bool = setting(False, doc="Control and estimate with a cubic B-spline fit of the surrogate (the plant keeps the full one).")
    step: float = setting(0.01, unit="mmol/gDW/h", **POSITIVE, doc="Spline grid spacing.")
    glucose_max: float | None = setting(None, unit="mmol/gDW/h", **POSITIVE, doc="Spline grid end; default the surrogate's domain.")
    oxygen_max: float | None = setting(
        None, unit="mmol/gDW/h", **POSITIVE, doc='Spline grid end in "kla" mode; default the surrogate\'s domain.'
    )


def _split(table: dict[str, Any] | None, options: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the keys of ``table`` that are not fields of ``options``, those that are)."""
    table, names = dict(table or {}), {f.name for f in dataclasses.fields(options)}
    return {k: v for k, v in table.items() if k not in names}, {k: v for k, v in table.items() if k in names}


@dataclasses.dataclass(frozen=True, eq=False)
class ControlSetup:
    """Everything a control scenario needs, built from its tables."""

    model: Any  # ControlModel (full surrogate: plant, offline optimum)
    control: Any  # ControlModel used by the MPC and the estimator (distilled or the same)
    reactor: Any  # FedBatchSettings
    cobra_model: Any
    cell: Any
    surrogate_how: str
    problem: BatchProblem
    mpc: MPCSettings
    estimator: EstimatorSettings
    measurements: MeasurementSettings
    closed_loop: ClosedLoopSettings
    offline: OfflineSettings
    baselines: BaselineSettings
    extra: dict
    surrogate: Any = None  # the trained surrogate (for the MPC's "network" backend)

    @property
    def x0(self) -> np.ndarray:
        return self.reactor.initial_state()

    def run_closed_loop(self, plant, guess_feed=None, settings: ClosedLoopSettings | None = None):
        """The scenario's closed loop (MPC + estimator on ``plant``) from the reactor's start.

        Parameters
        ----------
        plant : object with ``step(x, feed, dt)``
            The simulated plant (see :func:`_make_plant`).
        guess_feed : ndarray, optional
            Feed plan [L/h] at the first MPC steps, to warm-start the first solve.
        settings : ClosedLoopSettings, optional
            Defaults to the scenario's ``[closed_loop]`` table.
        """
        from mpc_bio.control.closed_loop import run_closed_loop

        mpc = None
        if self.mpc.backend in ("network", "network_taylor"):  # the surrogate network itself in the MPC loop
            from mpc_bio.control.network_mpc import build_network_mpc

            mpc = build_network_mpc(self.reactor, self.surrogate, self.problem, self.mpc)
        return run_closed_loop(
            self.control,
            self.problem,
            self.x0,
            mpc=mpc,
            mpc_settings=self.mpc,
            estimator_settings=self.estimator,
            measurement_settings=self.measurements,
            settings=self.closed_loop if settings is None else settings,
            plant=plant,
            guess_feed=guess_feed,
        )


def _err(path: Path, exc: Exception):
    from mpc_bio.scenarios.schema import ScenarioError

    return ScenarioError(f"{path}: {exc}")


def load_control_setup(path: Path, data: dict[str, Any], out: Path, *, progress: bool = True, kind: str = "closed_loop") -> ControlSetup:
    """Validate a control scenario's tables against the schema of ``kind`` (as ``mpc-bio validate``
    does) and build its setup from the resolved tables (:func:`control_setup`)."""
    from mpc_bio.scenarios.kinds import control_schema
    from mpc_bio.scenarios.schema import validate_with_schema

    return control_setup(path, validate_with_schema(path, data, control_schema(kind)), out, progress=progress)


def control_setup(path: Path, resolved: dict[str, Any], out: Path, *, progress: bool = True) -> ControlSetup:
    """The settings and the surrogate-based control model of a validated control scenario: ``resolved``
    holds every table with its defaults (:func:`~mpc_bio.scenarios.runner.validate_scenario`)."""
    from mpc_bio.control.process_adapter import control_model_from_process
    from mpc_bio.process import FedBatchSettings, ProcessSettingsError, UptakeKinetics, embed_cell_model
    from mpc_bio.scenarios.simulation import load_or_train_surrogate, resolve_model

    t = {name: resolved.get(name) or {} for name in (*_PROCESS_TABLES, *_CONTROL_TABLES)}
    prob, mpc = BatchProblem(**t["problem"]), MPCSettings(**t["mpc"])
    est, meas = EstimatorSettings(**t["estimator"]), MeasurementSettings(**t["measurements"])
    cl_table, loop_table = _split(t["closed_loop"], LoopOptions)
    loop = LoopOptions(**loop_table)
    extra = {"rmse_after": loop.rmse_after, "relax": loop.relax}
    cl = ClosedLoopSettings(**{"progress": progress, **cl_table})
    off_table, compare_table = _split(t["offline"], OfflineOptions)
    extra["compare_offline"] = OfflineOptions(**compare_table).compare
    off = OfflineSettings(**off_table)
    base_table = {k: v for k, v in t["baselines"].items() if v is not None}  # feed_glucose absent: the reactor's
    base = BaselineSettings(**base_table)
    cm = ControlModelOptions(**t["control_model"])
    try:
        reactor = FedBatchSettings(
            **t["reactor"],
            kinetics=UptakeKinetics(**t["kinetics"]),
            batch_time=prob.batch_time,
            output_step=mpc.t_step,
            dfba_step=min(0.005, mpc.t_step),
        )
    except ProcessSettingsError as exc:
        raise _err(path, exc) from None
    if "feed_glucose" not in base_table:
        base = dataclasses.replace(base, feed_glucose=reactor.feed_glucose)
    cobra_model = resolve_model(path, t["model"])
    sur, how = load_or_train_surrogate(path, t["surrogate"], cobra_model, reactor, out, progress)
    s = t["surrogate"]
    try:
        cell = embed_cell_model(sur, reactor, backend=s["backend"], symbolic=s["symbolic"], l4casadi_mode=s["l4casadi_mode"])
        model = control_model_from_process(reactor, cell)
    except (ProcessSettingsError, ControlError) as exc:
        raise _err(path, exc) from None
    control = model
    extra["control_model"] = f"full surrogate ({cell.backend})"
    if cm.distill:
        from mpc_bio.control.distill import distill_cell_model

        kin = reactor.kinetics
        upper = {reactor.glucose_input: cm.glucose_max}
        fixed = {}
        if kin.oxygen == "fixed":
            fixed[reactor.oxygen_input] = kin.oxygen_uptake
        else:  # both inputs move: a 2-D grid
            upper[reactor.oxygen_input] = cm.oxygen_max
        step = cm.step
        try:
            with _phase("distillation of the surrogate (B-spline over the uptakes)"):
                d = distill_cell_model(cell, upper=upper, fixed=fixed, step=step)
            control = control_model_from_process(reactor, d.cell)
        except (ProcessSettingsError, ControlError) as exc:
            raise _err(path, exc) from None
        dims = " x ".join(f"{n} {g[0]:g}-{g[-1]:g}" for n, g in zip(d.varying, d.grid))
        extra["control_model"] = (
            f"{len(d.grid)}-D B-spline distillation of the surrogate ({cell.backend}) over {dims} mmol/gDW/h, grid step {step}"
        )
        extra["distill_max_rel_error"] = dict(zip(cell.output_ids, d.max_rel_error.tolist()))
        extra["distill_covers_domain"] = d.covers_domain
        extra["distilled"] = d
    if mpc.symvar == "SX" and control.symvar == "MX":
        mpc = dataclasses.replace(mpc, symvar="MX")
    return ControlSetup(model, control, reactor, cobra_model, cell, how, prob, mpc, est, meas, cl, off, base, extra, sur)


def _save_fig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_closed_loop(res, out: Path, path: Path, setup: ControlSetup, cl: ClosedLoopSettings, offline=None) -> dict[str, Path]:
    """The closed loop's tables and figures (with ``offline`` when it succeeded)."""
    from mpc_bio.plotting.control import plot_closed_loop, plot_solver_stats

    files = {}
    for key, df in res.to_frames().items():
        files[f"closed_loop_{key}"] = out / f"closed_loop_{key}.csv"
        df.to_csv(files[f"closed_loop_{key}"], index=False)
    title = f"{path.stem}: MPC ({setup.estimator.kind}) on {cl.plant} plant"
    offline = offline if offline is not None and offline.success else None
    files["closed_loop_figure"] = _save_fig(plot_closed_loop(res, title=title, offline=offline), out / "closed_loop.png")
    files["closed_loop_solver_figure"] = _save_fig(plot_solver_stats(res), out / "closed_loop_solver.png")
    return files


def _plant_optimum(setup: ControlSetup, cl: ClosedLoopSettings):
    """The offline optimum on the perturbed plant's own parameters (what a controller knowing the
    plant exactly could reach); None for another plant."""
    if cl.plant != "perturbed":
        return None
    return _offline(setup, params=setup.model.params_with(cl.plant_parameter_scale), label="plant's offline optimum")


def _offline(setup: ControlSetup, params=None, label: str = "offline optimum"):
    """The offline optimum; with ``[offline].model = "control"`` solved on the controller's model
    and checked (fine grid, backoff) on the plant model."""
    from mpc_bio.control.offline import optimize_feed_profile
    from mpc_bio.status import phase

    m = setup.control if setup.offline.model == "control" else setup.model
    with phase(f"{label} (IPOPT, whole batch)") as info:
        off = optimize_feed_profile(m, setup.problem, setup.x0, setup.offline, params=params, check_model=setup.model)
        info["note"] = f"IPOPT {off.status}, {off.iterations} iterations"
    return off


def _offline_failures(off, label: str = "offline optimum") -> list[str]:
    """``[message]`` when the offline solve failed (its result then feeds no ratio), else ``[]``."""
    return [] if off.success else [f"{label}: IPOPT returned {off.status} (not a solution; no ratio computed with it)"]


def _failed_solves(summary: dict[str, Any]) -> list[str]:
    """Solves of a closed loop that failed without invalidating its result (the failed MPC step applied
    the shifted previous plan; a failed estimator solve kept its previous estimate), one line each."""
    out = []
    if summary.get("solver_failures"):
        out.append(f"MPC: {summary['solver_failures']} of {summary['mpc_steps']} steps failed (the shifted previous plan was applied)")
    if summary.get("estimator_failures"):
        out.append(f"estimator: {summary['estimator_failures']} of {summary['estimator_solves']} solves failed")
    return out


def _phase(name: str):
    from mpc_bio.status import phase

    return phase(name)


def _offline_summary(off, setup: ControlSetup) -> dict:
    return {
        "offline_model": setup.offline.model,
        "offline_objective": off.simulated.objective,
        "offline_collocation_objective": off.objective,
        "offline_status": off.status,
        "offline_success": off.success,
        "offline_iterations": off.iterations,
        "offline_kkt": off.kkt,
        "offline_violation": off.simulated.violation,
        "offline_max_violation_frac": off.max_violation_frac,
        "offline_backoff": off.backoff,
        "offline_rounds": off.rounds,
        "offline_solve_s": off.solve_time,
        "offline_feed_L_per_h": off.feed.tolist(),
    }


def run_closed_loop_scenario(path: Path, data: dict[str, Any], out: Path, *, progress: bool = True):
    """Runner of ``kind = "closed_loop"``; returns (files, summary)."""

    with _phase("control model (surrogate, embedding)"):
        setup = control_setup(path, data, out, progress=progress)
    off = _offline(setup) if setup.extra["compare_offline"] else None
    with _phase("closed loop (MPC + estimator on the plant)"):
        res = setup.run_closed_loop(_make_plant(setup), None if off is None else offline_feed_at_steps(off, setup.mpc))
    nominal = off
    if off is not None and setup.closed_loop.plant == "perturbed":
        # the closed loop runs on the perturbed plant: compare it with that plant's offline optimum
        # (the nominal one above only warm-started the first MPC solve)
        off = _plant_optimum(setup, setup.closed_loop)
    files = _write_closed_loop(res, out, path, setup, setup.closed_loop, off)
    summary = _loop_summary(setup, res)
    summary["failed_solves"] = _failed_solves(summary)
    if off is not None:
        summary.update(_offline_summary(off, setup))
        summary["closed_loop_vs_offline"] = (
            _ratio_to_feasible(res.objective, off.simulated.objective, off.max_violation_frac, setup.problem) if off.success else None
        )
        summary["failures"] = _offline_failures(off)
        summary["offline_params"] = "plant" if off is not nominal else "nominal"
        if off is not nominal:
            summary["nominal_offline_objective"] = nominal.simulated.objective
    files["settings"] = _write_settings(out, setup)
    return files, summary


def _ratio_to_feasible(objective: float, baseline: float, baseline_violation: float, problem: BatchProblem):
    """``objective / baseline`` when the baseline respects the limits within the problem's tolerance, else None.

    A baseline that breaks a limit (e.g. a nominal profile applied open loop to a mismatched
    plant) can score above any feasible feed, so comparing with it says nothing.
    """
    if not math.isfinite(baseline) or baseline == 0 or baseline_violation > problem.constraint_tolerance:
        return None
    return float(objective / baseline)


def _loop_summary(setup: ControlSetup, res) -> dict:
    """The summary entries of a closed-loop run ``res``: the surrogate and its embedding, the loop's own
    summary and the uptakes' place in the surrogate's domain."""
    return {
        "surrogate": setup.surrogate_how,
        "backend": setup.cell.backend,
        "oxygen_mode": setup.reactor.kinetics.oxygen,
        **{k: v for k, v in setup.extra.items() if k in ("control_model", "distill_max_rel_error", "distill_covers_domain")},
        **res.summary(setup.extra["rmse_after"]),
        **uptake_domain_summary(setup, res),
    }


def _write_settings(out: Path, setup: ControlSetup) -> Path:
    """``settings.json``: every resolved settings object of the run."""
    path = out / "settings.json"
    path.write_text(json.dumps(_settings_dict(setup), indent=2, default=str))
    return path


def uptake_domain_summary(setup: ControlSetup, res) -> dict:
    """Where the controller's cell model is evaluated outside its domain along a closed loop.

    The uptakes (mmol/gDW/h) of the estimated states (what the MPC and the estimator predict
    from) and of the true states are checked against the surrogate's training domain and, for a
    distilled control model, against the spline's grid (outside it the spline holds its boundary
    values). A warning names the count when any step is outside.
    """
    import warnings

    import numpy as np

    m = setup.control
    if m.aux is None or not any(n.startswith("q_") for n in m.aux_names):
        return {}
    iq = [m.aux_names.index("q_glc"), m.aux_names.index("q_o2")]
    order = [setup.cell.input_index(setup.reactor.glucose_input), setup.cell.input_index(setup.reactor.oxygen_input)]

    def uptakes(states, params):
        U = np.zeros((len(states), 2))
        for k, (x, p) in enumerate(zip(states, params)):
            a = np.asarray(m.aux(x, 0.0, p)).reshape(-1)
            U[k, order] = a[iq]
        return U

    u_est = uptakes(res.estimates, res.estimated_params)
    cl = setup.closed_loop
    p_true = setup.model.params_with(cl.plant_parameter_scale) if cl.plant == "perturbed" else setup.model.param_values
    u_true = uptakes(res.true_states, [p_true] * len(res.true_states))
    out = {
        "uptake_est_out_of_surrogate_domain_steps": int((~setup.cell.in_domain(u_est)).sum()),
        "uptake_true_out_of_surrogate_domain_steps": int((~setup.cell.in_domain(u_true)).sum()),
        "uptake_range_true": {
            "q_glc": [float(u_true[:, order[0]].min()), float(u_true[:, order[0]].max())],
            "q_o2": [float(u_true[:, order[1]].min()), float(u_true[:, order[1]].max())],
        },
    }
    d = setup.extra.get("distilled")
    if d is not None:
        out["uptake_est_out_of_spline_grid_steps"] = int(d.out_of_domain(u_est).sum())
    bad = {k: v for k, v in out.items() if k.endswith("_steps") and v}
    if bad:
        warnings.warn(f"The control model was evaluated outside its domain: {bad}.", stacklevel=2)
    return out


def offline_feed_at_steps(off, mpc: MPCSettings) -> np.ndarray:
    """The offline profile at the MPC steps (first ``n_horizon`` steps)."""
    import numpy as np

    from mpc_bio.control.offline import piecewise_feed

    law = piecewise_feed(off.interval_edges, off.feed)
    return np.array([law(k * mpc.t_step, None) for k in range(mpc.n_horizon)])


def _make_plant(setup: ControlSetup):
    """The closed-loop plant: the full surrogate model (nominal or perturbed) or the dFBA."""
    from mpc_bio.control.closed_loop import IntegratorPlant

    cl = setup.closed_loop
    if cl.plant == "dfba":
        from mpc_bio.control.process_adapter import DfbaPlant

        return DfbaPlant(setup.reactor, setup.cobra_model, relax=setup.extra["relax"], substeps=cl.plant_substeps)
    params = setup.model.params_with(cl.plant_parameter_scale) if cl.plant == "perturbed" else setup.model.param_values
    return IntegratorPlant(setup.model, params, setup.mpc.t_step, cl.plant_substeps)


def run_feed_optimization_scenario(path: Path, data: dict[str, Any], out: Path, *, progress: bool = True):
    """Runner of ``kind = "feed_optimization"``; returns (files, summary)."""
    import numpy as np
    import pandas as pd

    from mpc_bio.control.baselines import tune_constant_feed, tune_exponential_feed
    from mpc_bio.plotting.control import plot_baseline_scan, plot_feed_profiles

    with _phase("control model (surrogate, embedding)"):
        setup = control_setup(path, data, out, progress=progress)
    off = _offline(setup)
    with _phase("baseline scans (constant and exponential feeds, CVODES)"):
        const = tune_constant_feed(setup.model, setup.problem, setup.x0, setup.baselines)
        expo = tune_exponential_feed(setup.model, setup.problem, setup.x0, setup.baselines)
    trajs = {"offline optimum": off.simulated}
    if const.trajectory is not None:
        trajs["best constant"] = const.trajectory
    if expo.trajectory is not None:
        trajs["best exponential"] = expo.trajectory
    rows = []
    for label, tr in trajs.items():
        df = pd.DataFrame(tr.states, columns=list(tr.state_names))
        df.insert(0, "time_h", tr.time)
        df.insert(1, "profile", label)
        df["feed_L_per_h"] = tr.feed
        rows.append(df)
    files = {"profiles": out / "feed_profiles.csv"}
    pd.concat(rows, ignore_index=True).to_csv(files["profiles"], index=False)
    scans = pd.concat(
        [
            pd.DataFrame(
                {
                    "baseline": b.kind,
                    "parameter": b.parameter_name,
                    "value": b.scan_parameters,
                    "objective": b.scan_objectives,
                    "violation": b.scan_violations,
                }
            )
            for b in (const, expo)
        ]
    )
    files["baseline_scans"] = out / "baseline_scans.csv"
    scans.to_csv(files["baseline_scans"], index=False)
    roles = {"biomass": setup.model.roles.biomass, "glucose": setup.model.roles.glucose, "acetate": setup.model.roles.acetate}
    files["figure"] = _save_fig(
        plot_feed_profiles(
            trajs,
            limits={"glucose": setup.problem.glucose_max, "acetate": setup.problem.acetate_max},
            roles=roles,
            tolerance=setup.problem.constraint_tolerance,
            failed=() if off.success else ("offline optimum",),
        ),
        out / "feed_profiles.png",
    )
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    o_line = off.simulated.objective if off.success else None
    plot_baseline_scan(const, axs[0], offline_objective=o_line, objective_unit=_objective_unit(setup.problem))
    plot_baseline_scan(expo, axs[1], offline_objective=o_line, objective_unit=_objective_unit(setup.problem))
    files["baseline_figure"] = _save_fig(fig, out / "baseline_scans.png")
    o = off.simulated.objective
    summary = {
        "surrogate": setup.surrogate_how,
        "backend": setup.cell.backend,
        "objective_kind": setup.problem.objective,
        **_offline_summary(off, setup),
        "offline_solve_s": off.solve_time,
        "oxygen_mode": setup.reactor.kinetics.oxygen,
        "const_feed_objective": const.objective,
        "const_feed_best_L_per_h": const.parameter,
        "exp_feed_objective": expo.objective,
        "exp_feed_best_mu_per_h": expo.parameter,
        "offline_vs_exp_margin": (o - expo.objective) / abs(expo.objective) if np.isfinite(expo.objective) and off.success else None,
        "offline_vs_const_margin": (o - const.objective) / abs(const.objective) if np.isfinite(const.objective) and off.success else None,
        "failures": _offline_failures(off),
    }
    files["settings"] = _write_settings(out, setup)
    return files, summary


def run_mpc_mismatch_scenario(path: Path, data: dict[str, Any], out: Path, *, progress: bool = True):
    """Runner of ``kind = "mpc_mismatch"``; returns (files, summary).

    The offline optimum of the (nominal) control model is applied open loop to the mismatched
    plant; the closed loop runs on the same plant; both objectives are reported.
    """
    import numpy as np

    from mpc_bio.control.offline import piecewise_feed

    with _phase("control model (surrogate, embedding)"):
        setup = control_setup(path, data, out, progress=progress)
    cl = setup.closed_loop
    if cl.plant == "nominal":
        from mpc_bio.scenarios.schema import ScenarioError

        raise ScenarioError(f"{path}: kind 'mpc_mismatch' needs [closed_loop].plant = 'perturbed' or 'dfba'. Got 'nominal'.")
    off = _offline(setup)
    dt = setup.mpc.t_step

    def make_plant():
        return _make_plant(setup)

    # open loop: the nominal offline profile on the mismatched plant, at the control step
    plant = make_plant()
    law = piecewise_feed(off.interval_edges, off.feed)
    x = setup.x0.copy()
    states = [x.copy()]
    n = int(round(setup.problem.batch_time / dt))
    for k in range(n):
        x = plant.step(x, law(k * dt, x), dt)[-1]
        states.append(x.copy())
    from mpc_bio.control.model import constraint_margins, objective_value

    states = np.array(states)
    open_obj = objective_value(setup.model, setup.problem, states[-1])
    open_margins = constraint_margins(setup.model, setup.problem, states)
    open_violation = float(max(0.0, max(-np.min(m) for m in open_margins.values())))
    with _phase("closed loop (MPC + estimator on the mismatched plant)"):
        res = setup.run_closed_loop(cl_plant := make_plant(), offline_feed_at_steps(off, setup.mpc), settings=cl)
    oracle = _plant_optimum(setup, cl)
    files = _write_closed_loop(res, out, path, setup, cl, oracle)
    import pandas as pd

    ol = pd.DataFrame(states, columns=list(setup.model.state_names))
    ol.insert(0, "time_h", dt * np.arange(n + 1))
    files["open_loop"] = out / "open_loop_offline_profile.csv"
    ol.to_csv(files["open_loop"], index=False)
    summary = {
        **_loop_summary(setup, res),
        **_offline_summary(off, setup),
        "open_loop_offline_on_plant_objective": open_obj,
        "open_loop_offline_on_plant_violation": open_violation,
        "open_loop_offline_on_plant_feasible": open_violation <= setup.problem.constraint_tolerance,
        # compared only with a baseline that keeps the limits (None otherwise)
        "closed_loop_vs_open_loop": _ratio_to_feasible(res.objective, open_obj, open_violation, setup.problem) if off.success else None,
        "failures": _offline_failures(off, "offline optimum (nominal model)"),
    }
    summary["failed_solves"] = _failed_solves(summary)
    if oracle is not None:
        summary["plant_offline_objective"] = oracle.simulated.objective
        summary["plant_offline_status"] = oracle.status
        summary["plant_offline_max_violation_frac"] = oracle.max_violation_frac
        summary["closed_loop_vs_plant_offline"] = (
            _ratio_to_feasible(res.objective, oracle.simulated.objective, oracle.max_violation_frac, setup.problem)
            if oracle.success
            else None
        )
        summary["failures"] += _offline_failures(oracle, "plant's offline optimum")
    else:
        summary["dfba_lp_solves"] = cl_plant.lp_solves
        summary["dfba_plant_s"] = cl_plant.wall_time
    files["settings"] = _write_settings(out, setup)
    return files, summary


def _objective_unit(problem: BatchProblem) -> str:
    return {"biomass": "final biomass [gDW]", "product": "final product [mmol]"}.get(problem.objective, "productivity [gDW/L/h]")


def _settings_dict(setup: ControlSetup) -> dict:
    return {
        "reactor": setup.reactor.to_dict(),
        "problem": dataclasses.asdict(setup.problem),
        "mpc": dataclasses.asdict(setup.mpc),
        "estimator": dataclasses.asdict(setup.estimator),
        "measurements": dataclasses.asdict(setup.measurements),
        "closed_loop": dataclasses.asdict(setup.closed_loop),
        "offline": dataclasses.asdict(setup.offline),
        "baselines": dataclasses.asdict(setup.baselines),
        "extra": {k: v for k, v in setup.extra.items() if k != "distilled"},
    }
