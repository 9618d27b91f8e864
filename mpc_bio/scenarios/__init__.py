"""Scenario files: schema validation, the runner (dispatch on ``kind``) and ``mpc-bio run``."""

from mpc_bio.scenarios.runner import SCENARIO_KINDS, ScenarioResult, default_out_dir, load_scenario, run_scenario
from mpc_bio.scenarios.schema import Field, ScenarioError, validate_table

__all__ = [
    "SCENARIO_KINDS",
    "ScenarioResult",
    "ScenarioError",
    "Field",
    "validate_table",
    "load_scenario",
    "run_scenario",
    "default_out_dir",
]
