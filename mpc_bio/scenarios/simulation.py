"""``kind = "simulation"``: a fed-batch simulated with the surrogate, optionally beside the
LP-in-the-loop dFBA (paper 1, figure 3).

Tables of the scenario file (all keys validated; units as in :class:`~mpc_bio.process.FedBatchSettings`):

``[model]``       ``name`` (bundled model, ``"iCH360"`` for the shared reference data) or ``path``.
``[surrogate]``   ``artifact`` = ``"default"`` (the shipped e_coli_core surrogate), a directory,
                  or ``"train"`` (sample pFBA on a grid and train here; cached), ``backend``,
                  ``symbolic``, ``l4casadi_mode``; training: ``grid_step``, ``grid_max``,
                  ``hidden``, ``epochs``, ``seed``, ``cache``.
``[reactor]``     :class:`FedBatchSettings` scalars, ``products``, ``products0``.
``[kinetics]``    :class:`UptakeKinetics`.
``[feed]``        ``times`` (h), ``rates`` (L/h).
``[simulation]``  ``t_end``, ``output_step``, ``dfba_step`` (h), ``compare_lp``, ``relax``,
                  ``rtol``, ``atol``.

Writes ``figure.png`` (six panels, LP run dashed with its stop event marked),
``trajectories.csv`` (both runs, tidy, column ``method``), ``events.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mpc_bio.scenarios.schema import Field, ScenarioError, validate_table

__all__ = ["run_simulation", "SIMULATION_TABLES", "resolve_model", "load_or_train_surrogate"]

_REACTOR = {
    "volume0": Field(float),
    "glucose0": Field(float),
    "biomass0": Field(float),
    "feed_glucose": Field(float),
    "products": Field(dict),
    "products0": Field(dict),
    "glucose_input": Field(str),
    "oxygen_input": Field(str),
    "glucose_exchange": Field(str),
    "oxygen_exchange": Field(str),
    "product_uptake_gate": Field(float),
    "glucose_rate": Field(str),
}
_KINETICS = {
    "glucose_vmax": Field(float),
    "glucose_km": Field(float),
    "oxygen": Field(str),
    "oxygen_uptake": Field(float),
    "oxygen_vmax": Field(float),
    "oxygen_km": Field(float),
    "kla": Field(float),
    "o2_saturation": Field(float),
}
_FEED = {"times": Field(list, required=True, item=float), "rates": Field(list, required=True, item=float)}
_SIMULATION = {
    "t_end": Field(float),
    "output_step": Field(float),
    "dfba_step": Field(float),
    "compare_lp": Field(bool, default=True),
    "relax": Field(bool, default=False),
    "rtol": Field(float, default=1e-8),
    "atol": Field(float, default=1e-10),
}
_MODEL = {"name": Field(str), "path": Field(str)}
_SURROGATE = {
    "artifact": Field(str, default="default"),
    "backend": Field(str, default="native"),
    "symbolic": Field(str, default="SX"),
    "l4casadi_mode": Field(str, default="exact"),
    "grid_step": Field(float, default=1.0),
    "grid_max": Field(float, default=20.0),
    "hidden": Field(list, item=int),
    "epochs": Field(int, default=3000),
    "seed": Field(int, default=0),
    "cache": Field(bool, default=True),
}

#: Table name -> expected keys.
SIMULATION_TABLES = {
    "model": _MODEL,
    "surrogate": _SURROGATE,
    "reactor": _REACTOR,
    "kinetics": _KINETICS,
    "feed": _FEED,
    "simulation": _SIMULATION,
}


def resolve_model(path: Path, spec: dict[str, Any]):
    """The cobra model named by a validated ``[model]`` table (``name`` or ``path``, relative to
    the scenario file ``path``); ``"iCH360"`` is the copy shipped with mpc_bio."""
    from mpc_bio.metabolism.models import load_model

    if "path" in spec and "name" in spec:
        raise ScenarioError(f"{path}: give either [model].name or [model].path, not both.")
    if "path" in spec:
        p = Path(os.path.expandvars(spec["path"])).expanduser()
        if not p.is_absolute():
            p = (path.parent / p).resolve() if (path.parent / p).exists() else p
        return load_model(p)
    return load_model(spec.get("name", "e_coli_core"))


def _cache_root() -> Path:
    root = os.environ.get("MPC_BIO_CACHE") or os.path.join(tempfile.gettempdir(), "mpc_bio_cache")
    return Path(root) / "surrogates"


def load_or_train_surrogate(path: Path, spec: dict[str, Any], model, reactor, out: Path, progress: bool):
    """Load or train the surrogate named by the [surrogate] table; returns (surrogate, how)."""
    from mpc_bio.metabolism.models import model_hash
    from mpc_bio.surrogate import SHIPPED_SURROGATES, default_surrogate, load_surrogate

    art = spec["artifact"]
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
        hidden = tuple(spec.get("hidden", (64, 64)))
        ss = SurrogateSettings(hidden=hidden, epochs=spec["epochs"], seed=spec["seed"], num_threads=2)
        pfba = PFBASettings(inputs=inputs, relax=True)
        key = json.dumps([mh, repr(pfba), spec["grid_step"], spec["grid_max"], hidden, spec["epochs"], spec["seed"]])
        cache = _cache_root() / hashlib.sha256(key.encode()).hexdigest()[:16]
        if spec["cache"] and (cache / "surrogate.json").is_file():
            return load_surrogate(cache), f"trained earlier (cache {cache})"
        step, hi = spec["grid_step"], spec["grid_max"]
        pts = grid_points({reactor.glucose_input: (0.0, hi, step), reactor.oxygen_input: (0.0, hi, step)})
        ds = sample_pfba(model, pts, pfba, progress=progress)
        sur = train_surrogate(ds, ss, progress=progress)
        sur.save(out / "surrogate")
        if spec["cache"]:
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
    """Runner of ``kind = "simulation"`` (see the module docstring); returns (files, summary)."""
    from mpc_bio.plotting.process import plot_fedbatch
    from mpc_bio.process import (
        FedBatchSettings,
        FeedProfile,
        ProcessSettingsError,
        UptakeKinetics,
        embed_cell_model,
        simulate_dfba,
        simulate_surrogate,
    )

    unknown = sorted(set(data) - set(SIMULATION_TABLES))
    if unknown:
        raise ScenarioError(
            f"{path}: unknown table(s) {unknown} for kind 'simulation'; expected some of "
            f"{sorted(SIMULATION_TABLES)} plus kind, name, description."
        )
    if "feed" not in data:
        raise ScenarioError(f"{path}: missing table [feed] (expected times = [...] in h and rates = [...] in L/h).")
    t = {name: validate_table(path, name, data.get(name, {}), fields) for name, fields in SIMULATION_TABLES.items()}
    sim = t["simulation"]
    try:
        reactor = FedBatchSettings(
            **t["reactor"],
            kinetics=UptakeKinetics(**t["kinetics"]),
            feed=FeedProfile(times=tuple(t["feed"]["times"]), rates=tuple(t["feed"]["rates"])),
            **{k: sim[k] for k in ("t_end", "output_step", "dfba_step") if k in sim},
        )
    except ProcessSettingsError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    model = resolve_model(path, t["model"])
    sur, how = load_or_train_surrogate(path, t["surrogate"], model, reactor, out, progress)
    s = t["surrogate"]
    try:
        cell = embed_cell_model(sur, reactor, backend=s["backend"], symbolic=s["symbolic"], l4casadi_mode=s["l4casadi_mode"])
    except ProcessSettingsError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    res = simulate_surrogate(reactor, cell, rtol=sim["rtol"], atol=sim["atol"])
    runs = [res]
    dfba = None
    if sim["compare_lp"]:
        dfba = simulate_dfba(reactor, model, relax=sim["relax"], progress=progress)
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


