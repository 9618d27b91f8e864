"""A small build records the plan it chose: the batch from the measured step costs, the kink features' unit, the load."""

from __future__ import annotations

import pytest

from mpc_bio.surrogate.build import BuildSettings, _step_cost, build_surrogate, choose_batch_size
from tests.surrogate.conftest import tiny_build_settings


@pytest.fixture(scope="module")
def small_build(_ecoli_core_session):
    settings = tiny_build_settings(n_fresh_points=50, box=(("glucose", 0, 10), ("oxygen", 0, 5)))
    return build_surrogate(_ecoli_core_session, settings, progress=False)


def test_batch_follows_the_rule_on_the_measured_step_costs(small_build):
    """The batch in the plan is what :func:`choose_batch_size` gives on the recorded pilot timings, the
    training points and the Adam stage's share of the planned seconds; the fine-tuning batch is twice it."""
    plan, s = small_build.report["plan"], BuildSettings.from_dict(small_build.report["settings"])
    steps = _step_cost({int(b): t for b, t in plan["seconds_per_step"].items()})
    n_train = int(plan["training_points"] * (1 - small_build.surrogate.settings.validation_fraction))
    want = choose_batch_size(
        n_train,
        (1 - s.finetune_share) * plan["training_seconds_planned"],
        steps,
        max_batch=s.batch_size,
        min_batch=s.min_batch_size,
        min_steps=s.min_adam_steps,
        min_steps_per_epoch=s.min_steps_per_epoch,
    )
    assert plan["batch_size"] == want == small_build.surrogate.settings.batch_size
    assert small_build.surrogate.settings.finetune_batch_size == 2 * want
    # a few hundred points and seconds: far below 20,000 steps and 16 steps per epoch at 1024 points
    assert want < s.batch_size


def test_kink_features_are_in_the_largest_grid_step(small_build):
    """Box 10 x 5 on an 11 x 11 grid: steps 1.0 and 0.5; the kink reach is 0.5 of the larger, 0.5
    mmol/gDW/h (rel 1e-12), not of the smaller."""
    plan = small_build.report["plan"]
    assert plan["grid_step"] == pytest.approx([1.0, 0.5], rel=1e-12, abs=0)
    assert plan["kink_unit_step"] == pytest.approx(1.0, rel=1e-12, abs=0)
    sur = small_build.surrogate.settings
    if sur.kink_lines:
        assert sur.kink_reach == pytest.approx(0.5, rel=1e-12, abs=0)
        assert sur.kink_width == pytest.approx(2e-3, rel=1e-12, abs=0)


def test_report_records_the_machine_load(small_build):
    load = small_build.report["machine_load"]
    assert load["cpus"] >= 1
    if "loadavg_1min_mean" in load:
        assert 0 <= load["loadavg_1min_mean"] <= load["loadavg_1min_max"]
