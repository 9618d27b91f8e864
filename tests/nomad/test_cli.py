"""``mpc-bio nomad ensemble`` end to end on a small ensemble, and settings validation."""

from __future__ import annotations

import json

import pytest

from mpc_bio.cli import main
from mpc_bio.nomad.settings import load_study_settings

CONFIG = """
[nomad]
output_dir = "unused"
[nomad.network]
model = "anthranilate"
[nomad.steady_state]
n_states = 4
[nomad.sampling]
n_models = 60
seed = 2
[nomad.screening]
n_perturbations = 1
n_robustness = 1
max_nonlinear_models = 4
[nomad.executor]
n_workers = 1
chunk_size = 30
progress = false
[nomad.design]
anything = "belongs to the design stage"
"""


def test_nomad_ensemble_command_writes_results(tmp_path, capsys):
    cfg = tmp_path / "nomad.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["nomad", "ensemble", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_models"] == 60
    assert summary["network"]["n_reactions"] == 49
    names = [s["name"] for s in summary["funnel"]]
    assert names == ["linear_stability", "time_constant", "nonlinear_return", "robustness"]
    assert summary["funnel"][0]["n_in"] == 60
    for f in (
        "funnel.csv",
        "models.csv",
        "yield_control.csv",
        "flux_control_median.csv",
        "ensemble/ensemble.npz",
        "control_coefficients/control_coefficients.json",
        "figures/eigenvalues.png",
        "figures/time_constants.png",
        "figures/screening_funnel.png",
        "figures/yield_control_heatmap.png",
        "figures/cofactor_ratios.png",
    ):
        assert (out / f).is_file(), f
    assert summary["reference_states"]["method"] == "displacement"  # no Gibbs-energy data for e_coli_core
    assert len(summary["network"]["unapplied_regulations"]) == 7  # the shikimate feedback needs phe/tyr/trp
    assert "linear_stability" in capsys.readouterr().out


@pytest.mark.slow
def test_default_config_builds_the_paper_case(tmp_path, capsys):
    """The shipped config: the iCH360 trpD9923 network, TFA states, every shikimate regulation applied."""
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[2] / "scenarios" / "nomad_anthranilate.toml"
    out = tmp_path / "out"
    assert (
        main(
            [
                "nomad",
                "ensemble",
                "--config",
                str(cfg),
                "--out",
                str(out),
                "--n-models",
                "60",
                "--workers",
                "1",
                "--no-progress",
                "--no-figures",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    net = summary["network"]
    assert net["model_id"] == "ich360_trpD9923" and net["growth_reaction"] == "GROWTH_LUMP"
    assert net["n_compartments_balanced"] == 2 and net["unapplied_regulations"] == []
    assert net["n_regulation_slots"] == 8 and net["n_lumped_reactions"] > 100  # shikimate feedback + GLNS
    rs = summary["reference_states"]
    assert rs["method"] == "tfa" and rs["flux_profiles_sampled"]
    assert 0.5 < rs["energy_charge"][0] <= rs["energy_charge"][2] < 1.0
    assert "NOMAD paper: 196 reactions" in capsys.readouterr().out


def test_unknown_settings_key_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[nomad.sampling]\nn_model = 5\n")
    with pytest.raises(ValueError, match="Unknown key.*n_model"):
        load_study_settings(cfg)
    assert main(["nomad", "ensemble", "--config", str(cfg)]) == 2
