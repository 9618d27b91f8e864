"""``kind = "simulation"``: a fed-batch simulated with the surrogate, optionally beside the
LP-in-the-loop dFBA (paper 1, figure 3).

The tables of the file and their keys are defined once, by settings classes (:func:`process_tables`;
the control kinds share them): ``[model]`` :class:`ModelSource`, ``[surrogate]``
:class:`SurrogateSource`, ``[reactor]`` the scalars of
:class:`~mpc_bio.process.FedBatchSettings`, ``[kinetics]`` :class:`~mpc_bio.process.UptakeKinetics`,
``[feed]`` :class:`~mpc_bio.process.FeedProfile`, ``[simulation]`` the time grid of
:class:`~mpc_bio.process.FedBatchSettings` and :class:`SimulationOptions`. The runner receives the
file as validated and resolved (defaults filled in) by :mod:`mpc_bio.scenarios.runner`.

Writes ``figure.png`` (six panels, LP run dashed with its stop event marked),
``trajectories.csv`` (both runs, tidy, column ``method``), ``events.json``, ``settings.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mpc_bio.scenarios.schema import ScenarioError, Table, settings_fields
from mpc_bio.settings import POSITIVE, Settings, setting

__all__ = [
    "run_simulation",
    "ModelSource",
    "SurrogateSource",
    "SimulationOptions",
    "process_tables",
    "resolve_model",
    "load_or_train_surrogate",
]

#: Fields of FedBatchSettings given in [simulation] (or by the control problem), not in [reactor].
GRID_FIELDS = ("batch_time", "output_step", "dfba_step")


@dataclass(frozen=True)
class ModelSource(Settings):
    """Which metabolic model (``[model]``): a name or a file, not both."""

    error: ClassVar[type] = ScenarioError

    name: str | None = setting(
        None,
        doc=('A model bundled with COBRApy ("e_coli_core", "iJO1366", ...) or "iCH360" (shipped with mpc_bio); default "e_coli_core".'),
    )
    path: str | None = setting(
        None, is_path=True, doc=("Path of an SBML/JSON/MAT model file (relative to the scenario file); instead of name.")
    )


@dataclass(frozen=True)
class SurrogateSource(Settings):
    """The neural surrogate of the model's pFBA (``[surrogate]``): where it comes from and how it
    enters CasADi."""

    error: ClassVar[type] = ScenarioError

    artifact: str = setting(
        "default",
        is_path=True,
        doc=(
            '"default" (the surrogate shipped for the model), a shipped name ("e_coli_core", "iCH360"), a surrogate '
            'directory, or "train" (sample pFBA on a grid and train in the run; cached).'
        ),
    )
    backend: str = setting(
        "native",
        choices=("native", "l4casadi", "numpy"),
        doc=(
            'How the network enters CasADi: "native" (CasADi graph, exact derivatives of any order), "l4casadi" (the '
            'torch module), "numpy" (numpy/BLAS callback, finite-difference Jacobian: fastest for simulating large nets, '
            "not for optimisation)."
        ),
    )
    symbolic: str = setting("SX", choices=("SX", "MX"), doc="CasADi symbolic type of the embedded graph.")
    l4casadi_mode: str = setting("exact", doc="l4casadi evaluation mode (backend l4casadi only).")
    grid_step: float = setting(1.0, unit="mmol/gDW/h", **POSITIVE, doc='Training grid spacing of both uptakes (artifact "train").')
    grid_max: float = setting(20.0, unit="mmol/gDW/h", **POSITIVE, doc='Training grid end (artifact "train").')
    hidden: tuple[int, ...] = setting((64, 64), low=1, min_items=1, doc='Hidden layer widths (artifact "train").')
    epochs: int = setting(3000, low=1, doc='Training epochs (artifact "train").')
    seed: int = setting(0, low=0, doc="Training seed.")
    cache: bool = setting(True, doc="Reuse a surrogate trained earlier on the same inputs ($MPC_BIO_CACHE or the temp dir).")


@dataclass(frozen=True)
class SimulationOptions(Settings):
    """How the simulation kind integrates and compares (``[simulation]``, beside the time grid)."""

    error: ClassVar[type] = ScenarioError

    compare_lp: bool = setting(True, doc="Also run the LP-in-the-loop dFBA.")
    relax: bool = setting(False, doc="Relax infeasible LPs instead of stopping.")
    rtol: float = setting(1e-8, unit="-", **POSITIVE, doc="CVODES relative tolerance.")
    atol: float = setting(1e-10, **POSITIVE, doc="CVODES absolute tolerance (state units).")


@functools.cache
def process_tables() -> dict[str, Table]:
    """The ``[model]``, ``[surrogate]``, ``[reactor]``, ``[kinetics]``, ``[feed]`` and ``[simulation]``
    tables, derived from their settings classes (shared by the simulation and control kinds)."""
    from mpc_bio.process.settings import FedBatchSettings, FeedProfile, UptakeKinetics

    def build(cls):
        return lambda table: cls.from_dict(table)

    return {
        "model": Table(settings_fields(ModelSource), "which metabolic model"),
        "surrogate": Table(settings_fields(SurrogateSource), "the neural surrogate of the model's pFBA", check=build(SurrogateSource)),
        "reactor": Table(
            settings_fields(FedBatchSettings, skip=("kinetics", "feed", *GRID_FIELDS)),
            "fed-batch reactor (paper 1, Eq. 2)",
            check=build(FedBatchSettings),
        ),
        "kinetics": Table(settings_fields(UptakeKinetics), "uptake kinetics", check=build(UptakeKinetics)),
        "feed": Table(
            settings_fields(FeedProfile, required=("times", "rates")),
            "piecewise-constant feed profile",
            required=True,
            check=build(FeedProfile),
        ),
        "simulation": Table(
            {**settings_fields(FedBatchSettings, only=GRID_FIELDS), **settings_fields(SimulationOptions)}, "integration and comparison"
        ),
    }


def resolve_model(path: Path, spec: dict[str, Any] | ModelSource):
    """The cobra model named by a ``[model]`` table (``name`` or ``path``, relative to the scenario
    file ``path``); ``"iCH360"`` is the copy shipped with mpc_bio."""
    from mpc_bio.metabolism.models import load_model

    m = spec if isinstance(spec, ModelSource) else ModelSource.from_dict(spec, "[model]")
    if m.path is not None and m.name is not None:
        raise ScenarioError(f"{path}: give either [model].name or [model].path, not both.")
    if m.path is not None:
        p = Path(os.path.expandvars(m.path)).expanduser()
        if not p.is_absolute():
            p = (path.parent / p).resolve() if (path.parent / p).exists() else p
        return load_model(p)
    return load_model(m.name or "e_coli_core")


def _cache_root() -> Path:
    root = os.environ.get("MPC_BIO_CACHE") or os.path.join(tempfile.gettempdir(), "mpc_bio_cache")
    return Path(root) / "surrogates"


def load_or_train_surrogate(path: Path, spec: dict[str, Any] | SurrogateSource, model, reactor, out: Path, progress: bool):
    """Load or train the surrogate named by the [surrogate] table; returns (surrogate, how)."""
    from mpc_bio.metabolism.models import model_hash
    from mpc_bio.surrogate import SHIPPED_SURROGATES, default_surrogate, load_surrogate

    s = spec if isinstance(spec, SurrogateSource) else SurrogateSource.from_dict(spec, "[surrogate]")
    art = s.artifact
    mh = model_hash(model)
    shipped = {name.lower(): name for name in SHIPPED_SURROGATES}
    if art == "default":
        art = shipped.get(str(model.id).lower(), "")
        if not art:
            raise ScenarioError(
                f"{path}: [surrogate].artifact = 'default' is the shipped surrogate of the scenario's model, but "
                f"none ships for model {model.id!r} (shipped: {sorted(SHIPPED_SURROGATES)}). Give a surrogate "
                "directory, or 'train' to train one in this run."
            )
    if art.lower() in shipped:
        sur = default_surrogate(shipped[art.lower()])
        how = f"shipped {shipped[art.lower()]} artifact"
    elif art == "train":
        from mpc_bio.metabolism.sampling import grid_points, sample_pfba
        from mpc_bio.metabolism.settings import PFBASettings
        from mpc_bio.surrogate import SurrogateSettings, train_surrogate

        inputs = ((reactor.glucose_input, reactor.glucose_exchange), (reactor.oxygen_input, reactor.oxygen_exchange))
        ss = SurrogateSettings(hidden=s.hidden, epochs=s.epochs, seed=s.seed, num_threads=2)
        pfba = PFBASettings(inputs=inputs, relax=True)
        key = json.dumps([mh, repr(pfba), s.grid_step, s.grid_max, s.hidden, s.epochs, s.seed])
        cache = _cache_root() / hashlib.sha256(key.encode()).hexdigest()[:16]
        if s.cache and (cache / "surrogate.json").is_file():
            return load_surrogate(cache), f"trained earlier (cache {cache})"
        step, hi = s.grid_step, s.grid_max
        pts = grid_points({reactor.glucose_input: (0.0, hi, step), reactor.oxygen_input: (0.0, hi, step)})
        ds = sample_pfba(model, pts, pfba, progress=progress)
        sur = train_surrogate(ds, ss, progress=progress)
        sur.save(out / "surrogate")
        if s.cache:
            sur.save(cache)
        how = f"trained in this run on a {step} mmol/gDW/h grid ({len(ds.inputs) if hasattr(ds, 'inputs') else 'n'} points)"
    else:
        p = Path(os.path.expandvars(art)).expanduser()
        if not p.is_absolute() and (path.parent / p).exists():
            p = path.parent / p
        sur = load_surrogate(p)
        how = f"artifact {p}"
    if getattr(sur, "model_hash", "") and sur.model_hash != mh:
        raise ScenarioError(
            f"{path}: the surrogate ({how}) was trained on model {sur.model_id!r} (hash {sur.model_hash}), not on the "
            f"scenario's model {model.id!r} (hash {mh}). Set [surrogate].artifact to a surrogate of this model, or "
            "to 'train' to train one in this run."
        )
    return sur, how


def run_simulation(path: Path, data: dict[str, Any], out: Path, *, progress: bool = True):
    """Runner of ``kind = "simulation"`` on a validated, resolved file (see the module docstring);
    returns (files, summary)."""
    from mpc_bio.plotting.process import plot_fedbatch
    from mpc_bio.process import FedBatchSettings, ProcessSettingsError, embed_cell_model, simulate_dfba, simulate_surrogate

    if "feed" not in data:
        raise ScenarioError(f"{path}: missing table [feed] (expected times = [...] in h and rates = [...] in L/h).")
    sim_table = dict(data.get("simulation", {}))
    grid = {k: sim_table.pop(k) for k in GRID_FIELDS if k in sim_table}
    try:
        sim = SimulationOptions.from_dict(sim_table, "[simulation]")
        reactor = FedBatchSettings.from_dict(
            {**data.get("reactor", {}), "kinetics": data.get("kinetics", {}), "feed": data["feed"], **grid}, "[reactor]"
        )
        s = SurrogateSource.from_dict(data.get("surrogate", {}), "[surrogate]")
        model = resolve_model(path, data.get("model", {}))
        sur, how = load_or_train_surrogate(path, s, model, reactor, out, progress)
        cell = embed_cell_model(sur, reactor, backend=s.backend, symbolic=s.symbolic, l4casadi_mode=s.l4casadi_mode)
    except ProcessSettingsError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    res = simulate_surrogate(reactor, cell, rtol=sim.rtol, atol=sim.atol)
    runs = [res]
    dfba = None
    if sim.compare_lp:
        dfba = simulate_dfba(reactor, model, relax=sim.relax, progress=progress)
        runs.append(dfba)
    import pandas as pd

    table = pd.concat([r.to_pandas() for r in runs], ignore_index=True)
    files = {"trajectories": out / "trajectories.csv", "figure": out / "figure.png", "events": out / "events.json"}
    table.to_csv(files["trajectories"], index=False)
    fig = plot_fedbatch(res, dfba, title=f"{path.stem}: {model.id}, surrogate ({cell.backend}) vs LP in the loop")
    fig.savefig(files["figure"], dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    events = {r.method: [e.to_dict() for e in r.events] for r in runs}
    files["events"].write_text(json.dumps(events, indent=2, default=float))
    (out / "settings.json").write_text(json.dumps(reactor.to_dict(), indent=2))
    files["settings"] = out / "settings.json"
    summary: dict[str, Any] = {
        "model": model.id,
        "surrogate": how,
        "backend": cell.backend,
        "surrogate_sim_s": res.wall_time,
        "final_biomass_gDW": float(res.state("n_X")[-1]),
        "final_volume_L": float(res.state("V")[-1]),
        "max_growth_per_h": float(res.output("growth").max()),
        "surrogate_in_domain": bool(res.in_domain.all()),
    }
    if dfba is not None:
        stop = dfba.stop_event
        summary.update(
            {
                "lp_sim_s": dfba.wall_time,
                "lp_method": dfba.info.get("dfba_method", ""),
                "lp_completed": dfba.completed,
                "lp_stop_time_h": None if stop is None else stop.time,
                "lp_stop_kind": None if stop is None else stop.kind,
                "lp_solves": dfba.info["lp_solves"],
                "surrogate_sim_speedup": dfba.wall_time / res.wall_time if res.wall_time > 0 else None,
                **_agreement(res, dfba),
            }
        )
    return files, summary


def _agreement(sur, lp) -> dict[str, Any]:
    """How far the surrogate run lies from the LP run where the LP has a solution (output times).

    Biomass relative to the LP's; glucose as a fraction of the initial glucose amount (it goes to zero).
    """
    import numpy as np

    ok = np.array([s in ("optimal", "relaxed") for s in lp.status])
    n = min(len(sur.time), len(lp.time))
    ok = ok[:n] & np.isclose(sur.time[:n], lp.time[:n], rtol=0, atol=1e-9)
    if not ok.any():
        return {}
    X, Xl = sur.state("n_X")[:n][ok], lp.state("n_X")[:n][ok]
    G, Gl = sur.state("n_glc")[:n][ok], lp.state("n_glc")[:n][ok]
    G0 = float(lp.state("n_glc")[0])
    return {
        "compared_until_h": float(lp.time[:n][ok][-1]),
        "surrogate_vs_lp_biomass_max_rel_err": float(np.max(np.abs(X - Xl) / Xl)),
        "surrogate_vs_lp_glucose_max_err_frac_initial": float(np.max(np.abs(G - Gl)) / G0) if G0 > 0 else None,
    }
