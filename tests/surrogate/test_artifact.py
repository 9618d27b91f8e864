"""Artifact save/load, integrity checks and the validity domain."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from mpc_bio.surrogate import ArtifactError, DomainWarning, load_surrogate


def test_round_trip_gives_identical_outputs(small_surrogate, tmp_path):
    small_surrogate.save(tmp_path / "a")
    back = load_surrogate(tmp_path / "a")
    X = np.random.default_rng(0).uniform(0, 20, size=(50, 2))
    np.testing.assert_array_equal(back.predict(X), small_surrogate.predict(X))
    assert back.reaction_ids == small_surrogate.reaction_ids
    assert back.input_names == small_surrogate.input_names
    assert back.training_data_hash == small_surrogate.training_data_hash
    assert back.settings == small_surrogate.settings
    np.testing.assert_array_equal(back.domain_low, small_surrogate.domain_low)
    assert back.metrics["validation"]["n_points"] == small_surrogate.metrics["validation"]["n_points"]


def test_load_checks_dataset(small_surrogate, small_dataset, tmp_path):
    small_surrogate.save(tmp_path / "a")
    load_surrogate(tmp_path / "a", dataset=small_dataset)  # matches
    with pytest.raises(ArtifactError, match="trained on data"):
        load_surrogate(tmp_path / "a", training_data_hash="0" * 16)
    ids = list(small_surrogate.reaction_ids)
    ids[0], ids[1] = ids[1], ids[0]
    with pytest.raises(ArtifactError, match="reactions that do not match"):
        load_surrogate(tmp_path / "a", reaction_ids=ids)
    with pytest.raises(ArtifactError, match="takes inputs"):
        load_surrogate(tmp_path / "a", input_names=("oxygen", "glucose"))


def test_corrupted_weights_refused(small_surrogate, tmp_path):
    d = small_surrogate.save(tmp_path / "a")
    raw = bytearray((d / "weights.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (d / "weights.npz").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="corrupted"):
        load_surrogate(d)


def test_mixed_artifact_refused(small_surrogate, tmp_path):
    d = small_surrogate.save(tmp_path / "a")
    meta = json.loads((d / "surrogate.json").read_text())
    meta["reaction_ids"] = meta["reaction_ids"][:-1]  # json from another model, weights unchanged
    (d / "surrogate.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError):
        load_surrogate(d)


@pytest.mark.parametrize(
    "edit",
    [
        "swap_reaction_ids",  # e.g. EX_ac_e <-> EX_etoh_e: same shapes, other meaning
        "widen_domain",  # would switch the out-of-domain guard off
        "edit_metrics",
        "swap_input_reactions",
    ],
)
def test_any_edit_of_the_json_is_refused(small_surrogate, tmp_path, edit):
    d = small_surrogate.save(tmp_path / "a")
    meta = json.loads((d / "surrogate.json").read_text())
    if edit == "swap_reaction_ids":
        ids = meta["reaction_ids"]
        i, j = ids.index("EX_ac_e"), ids.index("EX_etoh_e")
        ids[i], ids[j] = ids[j], ids[i]
    elif edit == "widen_domain":
        meta["domain"]["high"] = [200.0, 200.0]
    elif edit == "edit_metrics":
        meta["metrics"]["validation"]["n_points"] += 1
    else:
        meta["input_reactions"] = meta["input_reactions"][::-1]
    (d / "surrogate.json").write_text(json.dumps(meta, indent=1))
    with pytest.raises(ArtifactError, match="was edited after it was written"):
        load_surrogate(d)


def test_reformatting_the_json_keeps_it_valid(small_surrogate, tmp_path):
    """The content hash is over the content, not the layout: re-indenting or reordering keys is fine."""
    d = small_surrogate.save(tmp_path / "a")
    meta = json.loads((d / "surrogate.json").read_text())
    (d / "surrogate.json").write_text(json.dumps(dict(reversed(list(meta.items())))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_surrogate(d)


def test_artifact_without_content_hash_warns(small_surrogate, tmp_path):
    from mpc_bio.surrogate import ArtifactIntegrityWarning

    d = small_surrogate.save(tmp_path / "a")
    meta = json.loads((d / "surrogate.json").read_text())
    del meta["content_sha256"]
    (d / "surrogate.json").write_text(json.dumps(meta))
    with pytest.warns(ArtifactIntegrityWarning, match="only its weights are verified"):
        load_surrogate(d)


def test_missing_files_refused(small_surrogate, tmp_path):
    d = small_surrogate.save(tmp_path / "a")
    shutil.copytree(d, tmp_path / "b")
    (tmp_path / "b" / "weights.npz").unlink()
    with pytest.raises(ArtifactError, match="weights.npz is missing"):
        load_surrogate(tmp_path / "b")
    (d / "surrogate.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid json"):
        load_surrogate(d)


def test_out_of_domain_warns_and_flags(small_surrogate):
    X = np.array([[5.0, 5.0], [25.0, 5.0], [5.0, -1.0], [20.0, 20.0]])
    with pytest.warns(DomainWarning, match="2 of 4"):
        v, flags = small_surrogate.predict(X, return_flags=True)
    assert flags.tolist() == [True, False, False, True]
    assert v.shape == (4, len(small_surrogate.reaction_ids))
    np.testing.assert_array_equal(small_surrogate.in_domain(X), flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_surrogate.predict(X[[0, 3]])  # inside: silent
        small_surrogate.predict(X, check_domain=False)  # explicitly unchecked: silent
    with pytest.warns(DomainWarning):
        small_surrogate.growth_sensitivity(X)


def test_bad_input_shape(small_surrogate):
    with pytest.raises(ValueError, match="glucose"):
        small_surrogate.predict(np.zeros((3, 3)))


def test_non_finite_inputs_are_flagged_not_hidden(small_surrogate):
    """NaN/inf inputs are outside the domain: warned, flagged, and their outputs are not finite
    numbers that could pass for predictions."""
    X = np.array([[np.nan, 5.0], [5.0, np.inf], [5.0, 5.0]])
    with pytest.warns(DomainWarning, match="2 of 3"), np.errstate(invalid="ignore"):
        v, flags = small_surrogate.predict(X, return_flags=True)
    assert flags.tolist() == [False, False, True]
    assert not np.isfinite(v[:2]).all(axis=1).any()
    assert np.isfinite(v[2]).all()
