"""Schemas of the scenario kinds: every table and key with type, unit, default and range.

:data:`SCENARIO_SCHEMAS` maps a kind to ``"module:attribute"`` of its :class:`KindSchema` (or of a
function returning one), imported only when needed, like :data:`~mpc_bio.scenarios.runner.SCENARIO_KINDS`.
A kind without a schema entry is validated by its own runner at run time only.

The schemas of ``simulation``, of the control kinds (``closed_loop``, ``feed_optimization``,
``mpc_mismatch``) and of ``codesign`` are built from the stages' frozen settings classes, so a
scenario file is checked exactly as its runner will build it: type, default, unit, range and doc
of every key as the class declares it (:mod:`mpc_bio.settings`; the ``[model]``, ``[surrogate]``,
``[reactor]``, ``[kinetics]``, ``[feed]`` and ``[simulation]`` tables are defined once, in
:func:`mpc_bio.scenarios.simulation.process_tables`; the ``[nomad]`` tables come from the NOMAD
stages' settings; the control tables from :mod:`mpc_bio.control.settings` and the control kinds'
own options in :mod:`mpc_bio.scenarios.control`), and each table's settings class is the table's
own check.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from mpc_bio.scenarios.schema import Field, KindSchema, Table, settings_fields

__all__ = [
    "SCENARIO_SCHEMAS",
    "get_schema",
    "simulation_schema",
    "control_schema",
    "codesign_schema",
    "nomad_table",
]

#: kind -> "module:attribute" of its KindSchema (or a zero-argument function returning one).
SCENARIO_SCHEMAS: dict[str, str] = {
    "simulation": "mpc_bio.scenarios.kinds:simulation_schema",
    "closed_loop": "mpc_bio.scenarios.kinds:closed_loop_schema",
    "feed_optimization": "mpc_bio.scenarios.kinds:feed_optimization_schema",
    "mpc_mismatch": "mpc_bio.scenarios.kinds:mpc_mismatch_schema",
    "codesign": "mpc_bio.scenarios.kinds:codesign_schema",
}


def get_schema(kind: str) -> KindSchema | None:
    """The schema of ``kind``, or None when the kind has none registered."""
    spec = SCENARIO_SCHEMAS.get(kind)
    if spec is None:
        return None
    mod, attr = spec.split(":")
    obj = getattr(importlib.import_module(mod), attr)
    return obj if isinstance(obj, KindSchema) else obj()


# ---- simulation ---------------------------------------------------------------------------------
def _process_tables() -> dict[str, Table]:
    from mpc_bio.scenarios.simulation import process_tables

    return process_tables()


def _known_model_hash(m: dict[str, Any]) -> tuple[str, str] | None:
    """``(name, hash)`` of the scenario's model when a shipped surrogate records it (the model is
    one of the bundled names read from the same file as a shipped surrogate's model), without
    loading the model; None otherwise (a model file, a model no surrogate ships for, or iCH360
    taken from ``$MPC_BIO_ICH360``). The run itself compares the loaded model's hash."""
    import json
    import os

    from mpc_bio.metabolism.models import BUNDLED_MODELS
    from mpc_bio.surrogate.shipped import SHIPPED_SURROGATES

    if "path" in m:
        return None
    name = str(m.get("name", "e_coli_core"))
    if name.lower() == "ich360" and os.environ.get("MPC_BIO_ICH360"):
        return None
    for key, art in SHIPPED_SURROGATES.items():
        if key.lower() == name.lower() or (name in BUNDLED_MODELS and BUNDLED_MODELS.get(key) == BUNDLED_MODELS[name]):
            try:
                return name, str(json.loads((art / "surrogate.json").read_text())["model_hash"])
            except (OSError, ValueError, KeyError):
                return None
    return None


def _model_checks(resolved: dict[str, Any]):
    import json
    from pathlib import Path

    from mpc_bio.metabolism.models import BUNDLED_MODELS
    from mpc_bio.surrogate.shipped import shipped_artifact

    m = resolved.get("model", {})
    if "name" in m and "path" in m:
        yield "[model]", "either name or path, not both", f"name = {m['name']!r} and path = {m['path']!r}"
    known = [*BUNDLED_MODELS, "iCH360"]
    name = m.get("name", "e_coli_core")
    if "name" in m and "path" in m:
        pass  # reported above
    elif "path" in m and not Path(m["path"]).expanduser().is_file():
        yield "model.path", "an existing SBML/JSON/MAT model file", repr(m["path"])
    elif "path" not in m and name not in BUNDLED_MODELS and name.lower() != "ich360":
        yield "model.name", f"one of {known} (or [model].path for a model file)", repr(name)
    s = resolved.get("surrogate", {})
    art = str(s.get("artifact", "default"))
    artifact_dir = None
    if art == "default" and "path" not in m:
        found = shipped_artifact(name)
        if found is None:
            yield (
                "surrogate.artifact",
                f'a surrogate directory or "train": no surrogate ships for model {name!r} '
                '("default" is the shipped one of e_coli_core and iCH360)',
                '"default"',
            )
        else:
            artifact_dir = found[1]
    elif art != "train" and art != "default":
        found = shipped_artifact(art)
        artifact_dir = found[1] if found else Path(art).expanduser()
        if not (artifact_dir / "surrogate.json").is_file():
            yield (
                "surrogate.artifact",
                '"default", a shipped name ("e_coli_core", "iCH360"), "train", or a directory holding surrogate.json',
                repr(art),
            )
            artifact_dir = None
    if artifact_dir is not None:  # intact, and the tracked products must be fluxes the surrogate predicts
        from mpc_bio.surrogate.integrity import JSON_NAME, NPZ_NAME, integrity_problem

        jpath, npath = artifact_dir / JSON_NAME, artifact_dir / NPZ_NAME
        try:
            meta = json.loads(jpath.read_text())
            ids = set(meta["reaction_ids"])
            problem = integrity_problem(meta, jpath, npath)
        except (OSError, ValueError, KeyError):  # unreadable: the loader names what is wrong at run time
            meta, ids, problem = {}, None, None
        if problem is not None:
            yield "surrogate.artifact", "an intact artifact (its json and weights match their recorded SHA-256)", problem
        known = _known_model_hash(m)
        if problem is None and known is not None and meta.get("model_hash") and meta["model_hash"] != known[1]:
            yield (
                "surrogate.artifact",
                f"a surrogate of the scenario's model {known[0]!r} (model hash {known[1]})",
                f"{art!r}, trained on model {meta.get('model_id')!r} (hash {meta['model_hash']})",
            )
        products = resolved.get("reactor", {}).get("products", {})
        missing = {k: v for k, v in products.items() if ids is not None and v not in ids}
        if missing:
            yield "reactor.products", "exchange reactions the surrogate predicts", f"{missing} (not among its outputs)"
    if s.get("backend") == "l4casadi" and s.get("symbolic") == "SX":
        yield "surrogate.symbolic", 'symbolic = "MX" with backend = "l4casadi" (l4casadi functions are MX externals)', "SX"


def _simulation_checks(resolved: dict[str, Any]):
    yield from _model_checks(resolved)
    sim = resolved.get("simulation", {})
    from mpc_bio.process import FedBatchSettings

    d = FedBatchSettings()
    batch_time = sim.get("batch_time", d.batch_time)
    out = sim.get("output_step", d.output_step)
    step = sim.get("dfba_step", d.dfba_step)
    if out > batch_time:
        yield "simulation.output_step", f"<= simulation.batch_time = {batch_time:g} h", f"{out:g} h"
    if sim.get("compare_lp", True) and step > out:
        yield "simulation.dfba_step", f"<= simulation.output_step = {out:g} h (the LP run records at the output step)", f"{step:g} h"
    times = resolved.get("feed", {}).get("times", [])
    late = [t for t in times if t >= batch_time]
    if late:
        yield "feed.times", f"switching times before simulation.batch_time = {batch_time:g} h", f"{late}"


@functools.cache
def simulation_schema() -> KindSchema:
    """Schema of ``kind = "simulation"`` (:mod:`mpc_bio.scenarios.simulation`)."""
    return KindSchema(
        "simulation",
        "A fed-batch simulated with the embedded surrogate, optionally beside the LP-in-the-loop dFBA (paper 1, figure 3). "
        "Writes figure.png, trajectories.csv, events.json, settings.json.",
        _process_tables(),
        (_simulation_checks,),
    )


# ---- control kinds ------------------------------------------------------------------------------
@functools.cache
def _control_tables() -> dict[str, Table]:
    from mpc_bio.control.settings import (
        BaselineSettings,
        BatchProblem,
        ClosedLoopSettings,
        EstimatorSettings,
        MeasurementSettings,
        MPCSettings,
        OfflineSettings,
    )
    from mpc_bio.scenarios.control import ControlModelOptions, LoopOptions, OfflineOptions

    def table(cls, where, doc, skip=(), options=None):
        """The table of ``cls`` (plus the keys of the scenario's own ``options`` class), checked by building both."""
        extra = settings_fields(options) if options is not None else {}

        def check(t: dict[str, Any]) -> None:
            cls.from_dict({k: v for k, v in t.items() if k not in extra}, where)
            if options is not None:
                options.from_dict({k: v for k, v in t.items() if k in extra}, where)

        return Table({**settings_fields(cls, skip=skip), **extra}, doc, check=check)

    baselines = table(BaselineSettings, "[baselines]", "constant and exponential feed baselines")
    # absent, the kind takes the reactor's feed_glucose (the class default serves code building it directly)
    f = baselines.fields["feed_glucose"]
    f.default, f.doc = None, f.doc.rstrip(".") + "; default [reactor].feed_glucose."
    return {
        "problem": table(BatchProblem, "[problem]", "the fed-batch optimal-control problem"),
        "mpc": table(MPCSettings, "[mpc]", "economic feed MPC (do-mpc, collocation)"),
        "estimator": table(EstimatorSettings, "[estimator]", "state (and Vmax) estimator"),
        "measurements": table(MeasurementSettings, "[measurements]", "noisy sampled measurements"),
        "closed_loop": table(ClosedLoopSettings, "[closed_loop]", "the closed-loop experiment", skip=("progress",), options=LoopOptions),
        "offline": table(OfflineSettings, "[offline]", "offline whole-batch feed optimisation", options=OfflineOptions),
        "baselines": baselines,
        "control_model": table(ControlModelOptions, "[control_model]", "model used by the controller and the estimator"),
    }


def _control_checks(resolved: dict[str, Any]):
    yield from _model_checks(resolved)
    if resolved.get("surrogate", {}).get("backend") == "numpy":
        yield (
            "surrogate.backend",
            '"native" or "l4casadi" (the optimisers need exact second derivatives; "numpy" is for simulation)',
            '"numpy"',
        )
    from mpc_bio.control.settings import BatchProblem, MPCSettings

    p, m, r = resolved.get("problem", {}), resolved.get("mpc", {}), resolved.get("reactor", {})
    bp, ms = BatchProblem(), MPCSettings()
    t_step, batch = m.get("t_step", ms.t_step), p.get("batch_time", bp.batch_time)
    if t_step > batch:
        yield "mpc.t_step", f"<= problem.batch_time = {batch:g} h", f"{t_step:g} h"
    vmax, v0 = p.get("volume_max", bp.volume_max), r.get("volume0", 1.0)
    if vmax <= v0:
        yield "problem.volume_max", f"> reactor.volume0 = {v0:g} L (the batch starts infeasible)", f"{vmax:g} L"
    chans = resolved.get("measurements", {}).get("channels", [])
    if any(c.get("quantity") == "acetate" for c in chans) and "ac" not in r.get("products", {"ac": "EX_ac_e"}):
        yield (
            "measurements.channels",
            'an acetate channel only with products = { ac = "EX_ac_e" } in [reactor]',
            f"products = {r.get('products')}",
        )
    cl = resolved.get("closed_loop", {})
    if cl.get("plant", "nominal") == "perturbed" and not cl.get("plant_parameter_scale"):
        yield "closed_loop.plant_parameter_scale", 'at least one parameter factor with plant = "perturbed"', "nothing"


def _mismatch_checks(resolved: dict[str, Any]):
    yield from _control_checks(resolved)
    plant = resolved.get("closed_loop", {}).get("plant", "nominal")
    if plant == "nominal":
        yield "closed_loop.plant", '"perturbed" or "dfba" for kind "mpc_mismatch"', '"nominal"'


def control_schema(kind: str) -> KindSchema:
    """Schema of a control scenario kind (:mod:`mpc_bio.scenarios.control`)."""
    docs = {
        "closed_loop": "Economic feed MPC with a state estimator on the plant, compared with the offline optimum.",
        "feed_optimization": "Offline whole-batch feed optimum vs the tuned constant and exponential feeds.",
        "mpc_mismatch": "Closed loop on a mismatched plant (perturbed kinetics or the LP-in-the-loop dFBA) vs the offline profile applied open loop.",
    }
    p = dict(_process_tables())
    p.pop("feed")
    p.pop("simulation")
    checks = (_mismatch_checks,) if kind == "mpc_mismatch" else (_control_checks,)
    tables = {**p, **_control_tables()}
    return KindSchema(kind, docs[kind] + ' Tables [model], [surrogate], [reactor], [kinetics] as in kind "simulation".', tables, checks)


closed_loop_schema = functools.cache(lambda: control_schema("closed_loop"))
feed_optimization_schema = functools.cache(lambda: control_schema("feed_optimization"))
mpc_mismatch_schema = functools.cache(lambda: control_schema("mpc_mismatch"))


# ---- codesign -----------------------------------------------------------------------------------
@functools.cache
def _nomad_fields() -> dict[str, Field]:
    """The ``[nomad]`` tables a co-design file shares with ``mpc-bio nomad ensemble/design``: the
    ensemble stage's settings and, as ``[nomad.design]``, the design stage's."""
    from mpc_bio.nomad.nra_settings import DesignStudySettings
    from mpc_bio.nomad.settings import EnsembleStudySettings

    return {
        **settings_fields(EnsembleStudySettings),
        "design": Field(
            dict, fields=settings_fields(DesignStudySettings), doc="[nomad.design] NRA designs, ranking and the verification reactor"
        ),
    }


@functools.cache
def nomad_table() -> Table:
    """The ``[nomad]`` table (with its ``[nomad.*]`` sub-tables) of ``mpc-bio nomad ensemble/design``
    configurations and of co-design scenarios; one object, so the reference documents it once."""
    return Table(
        _nomad_fields(), "the ensemble and design stages (as in `mpc-bio nomad ensemble/design --config`)", check=_nomad_table_check
    )


@functools.cache
def _codesign_fields() -> dict[str, Field]:
    from mpc_bio.codesign.settings import CodesignSettings

    return settings_fields(CodesignSettings)


def _codesign_table_check(table: dict[str, Any]) -> None:
    from mpc_bio.codesign.settings import CodesignSettings

    CodesignSettings.from_dict(table)


def _nomad_table_check(table: dict[str, Any]) -> None:
    from mpc_bio.nomad.nra_settings import DesignStudySettings
    from mpc_bio.nomad.settings import EnsembleStudySettings

    t = dict(table)
    design = t.pop("design", {})
    EnsembleStudySettings.from_dict(t, "[nomad]")
    DesignStudySettings.from_dict(design, "[nomad.design]")


def _codesign_checks(resolved: dict[str, Any]):
    from mpc_bio.codesign.settings import FeedSettings
    from mpc_bio.nomad.nra_settings import DesignStudySettings, NRASettings, VerificationSettings

    cd = resolved.get("codesign", {})
    feed = cd.get("feed", {})
    nomad = resolved.get("nomad", {})
    design = nomad.get("design", {})
    ver = design.get("verification", {})
    fd, vd = FeedSettings(), VerificationSettings()
    batch_end = feed.get("batch_time") or ver.get("batch_time", vd.batch_time)
    where = "codesign.feed.batch_time" if feed.get("batch_time") else "nomad.design.verification.batch_time"
    late = [t for t in ver.get("feed_times", vd.feed_times) if t >= batch_end]
    if late:
        yield (
            "nomad.design.verification.feed_times",
            f"switching times of the reference feed before the batch end {where} = {batch_end:g} h",
            f"{late}",
        )
    v0, vmax = ver.get("volume0", vd.volume0), feed.get("volume_max", fd.volume_max)
    if vmax <= v0:
        yield "codesign.feed.volume_max", f"> nomad.design.verification.volume0 = {v0:g} L (no room to feed)", f"{vmax:g} L"
    n_models = design.get("max_models", DesignStudySettings().max_models)
    n_members = feed.get("n_members", fd.n_members)
    if n_models and n_members > n_models:
        yield "codesign.feed.n_members", f"<= nomad.design.max_models = {n_models} (the members are NRA models)", f"{n_members}"
    n_int = design.get("nra", {}).get("max_interventions", NRASettings().max_interventions)
    if cd.get("n_designs", 3) > 0 and n_int == 0:
        yield "nomad.design.nra.max_interventions", "an integer >= 1 when codesign.n_designs > 0 (no intervention, no design)", "0"
    fmin = feed.get("feed_min", fd.feed_min)
    if vmax > v0 and fmin * batch_end + v0 > vmax:
        yield (
            "codesign.feed.feed_min",
            f"<= (volume_max - volume0) / batch time = {(vmax - v0) / batch_end:g} L/h (the smallest feed overfills the reactor)",
            f"{fmin:g} L/h",
        )


@functools.cache
def codesign_schema() -> KindSchema:
    """Schema of ``kind = "codesign"`` (:mod:`mpc_bio.codesign.study`)."""
    return KindSchema(
        "codesign",
        "Strain-plus-process co-design: the top NRA designs of the screened kinetic ensemble x feed profiles "
        "(batch, the reference feed, the shared feed optimised for the reference strain, each design's own robust feed), "
        "every strain x NRA model simulated in the kinetic fed-batch. Writes codesign_table.csv (titer, yield, productivity, "
        "final biomass and growth per strain x feed: mean, std, p10, p90), codesign_runs.csv, feeds.csv, "
        "codesign_summary.json (the best strain-plus-feed pair and its margin over the reference strain under the reference feed) "
        "and figures (Pareto titer vs growth, time courses with ensemble bands, feeds).",
        {
            "nomad": nomad_table(),
            "codesign": Table(_codesign_fields(), "the co-design study", check=_codesign_table_check),
        },
        (_codesign_checks,),
    )
