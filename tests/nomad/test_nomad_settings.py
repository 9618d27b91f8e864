"""The NOMAD settings on the one settings base: ranges, cross-field checks, renamed keys, round trip."""

from __future__ import annotations

import pytest

from mpc_bio.nomad.nra_settings import DesignStudySettings, NRASettings, VerificationSettings
from mpc_bio.nomad.settings import EnsembleStudySettings, NetworkSettings, NomadSettingsError, ScreeningSettings
from mpc_bio.scenarios.runner import validate_scenario
from mpc_bio.scenarios.schema import ScenarioError


def test_round_trip_and_pairs_as_tables():
    ens = EnsembleStudySettings()
    d = ens.to_dict()
    assert d["network"]["uptake_bounds"] == {"EX_glc__D_e": 10.0}
    assert EnsembleStudySettings.from_dict(d) == ens
    # the list-of-pairs form of a table is accepted too and builds equal settings
    as_list = NetworkSettings.from_dict({"uptake_bounds": [["EX_glc__D_e", 10.0]]})
    assert as_list == NetworkSettings.from_dict({"uptake_bounds": {"EX_glc__D_e": 10}})
    design = DesignStudySettings(max_models=0)
    assert design.max_models is None
    assert DesignStudySettings.from_dict(design.to_dict()) == design


def test_uniform_messages_name_parameter_expected_and_value():
    with pytest.raises(
        NomadSettingsError,
        match=r"The 'time_limit' parameter of NRASettings must be a finite number > 0 \(s\)\. "
        r"Got -1 instead\.",
    ):
        NRASettings(time_limit=-1)
    with pytest.raises(
        NomadSettingsError,
        match=r"The 'feed_times' parameter of VerificationSettings must be a list of times "
        r"starting at 0 and increasing \(h\)\. Got \(1\.0,\) instead\.",
    ):
        VerificationSettings(feed_times=(1.0,), feed_rates=(0.1,))
    with pytest.raises(NomadSettingsError, match="'feed_rates' parameter of VerificationSettings must be a list as long as feed_times"):
        VerificationSettings(feed_times=(0.0, 1.0), feed_rates=(0.1,))


@pytest.mark.parametrize(
    "cls, old, new",
    [
        (VerificationSettings, "t_end_h", "batch_time"),
        (VerificationSettings, "feed_glucose_mmol_per_l", "feed_glucose"),
        (VerificationSettings, "product_mw_g_per_mol", "product_mw"),
        (NRASettings, "time_limit_s", "time_limit"),
        (DesignStudySettings, "show_progress", "progress"),
        (ScreeningSettings, "initial_biomass", "biomass0"),
    ],
)
def test_renamed_keys_are_refused_naming_the_new_key(cls, old, new):
    with pytest.raises(NomadSettingsError, match=f"'{old}' is now '{new}'"):
        cls.from_dict({old: 1.0})


def test_validate_names_renamed_nomad_keys(tmp_path):
    p = tmp_path / "old.toml"
    p.write_text(
        'kind = "codesign"\n[nomad.screening]\nbatch_duration = 8.0\n[nomad.design]\nshow_progress = false\n'
        "[nomad.design.verification]\nt_end_h = 8.0\nvolume0_l = 1.0\n"
    )
    with pytest.raises(ScenarioError) as err:
        validate_scenario(p)
    found = {(q.key, q.what, q.expected) for q in err.value.problems}
    assert found == {
        ("nomad.screening.batch_duration", "renamed_key", "batch_time"),
        ("nomad.design.show_progress", "renamed_key", "progress"),
        ("nomad.design.verification.t_end_h", "renamed_key", "batch_time"),
        ("nomad.design.verification.volume0_l", "renamed_key", "volume0"),
    }


def test_resolved_file_holds_pair_defaults_as_tables(tmp_path):
    """A table given without its pairs key gets the default as a table, so the resolved file validates again."""
    p = tmp_path / "min.toml"
    p.write_text('kind = "codesign"\n[nomad.network]\nmodel = "core_shikimate"\n[nomad.steady_state]\nn_states = 2\n')
    r = validate_scenario(p)
    assert r["nomad"]["network"]["uptake_bounds"] == {"EX_glc__D_e": 10.0}
    assert r["nomad"]["steady_state"]["fixed_concentrations"]["glc__D_e"] == 20.0
    assert EnsembleStudySettings.from_dict({k: v for k, v in r["nomad"].items() if k != "design"}).network.uptake_bounds == (
        ("EX_glc__D_e", 10.0),
    )
