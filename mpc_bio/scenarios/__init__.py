"""Scenario files: one schema for every kind (validated on load, every problem reported at once),
the runner (dispatch on ``kind``, one complete output directory per run), sweeps of one scenario
over values and seeds (locally or on Dask), and ``mpc-bio run`` / ``sweep`` / ``validate``."""

from mpc_bio.scenarios.kinds import SCENARIO_SCHEMAS, get_schema
from mpc_bio.scenarios.runner import (
    SCENARIO_KINDS,
    RunExistsError,
    ScenarioResult,
    default_out_dir,
    dependency_versions,
    load_scenario,
    run_scenario,
    run_status,
    validate_scenario,
)
from mpc_bio.scenarios.schema import Field, KindSchema, Problem, ScenarioError, Table, format_reference, validate_table
from mpc_bio.scenarios.sweep import SweepResult, parse_vary, run_sweep

__all__ = [
    "SCENARIO_KINDS",
    "SCENARIO_SCHEMAS",
    "ScenarioResult",
    "ScenarioError",
    "RunExistsError",
    "Problem",
    "Field",
    "Table",
    "KindSchema",
    "validate_table",
    "validate_scenario",
    "load_scenario",
    "run_scenario",
    "run_sweep",
    "parse_vary",
    "SweepResult",
    "run_status",
    "default_out_dir",
    "dependency_versions",
    "get_schema",
    "format_reference",
]
