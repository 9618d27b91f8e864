"""`mpc-bio train` and `mpc-bio evaluate-surrogate` end to end on a small grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mpc_bio.cli import main
from mpc_bio.surrogate import load_surrogate


def test_train_then_evaluate(small_dataset, tmp_path):
    data = small_dataset.save(tmp_path / "grid")
    art = tmp_path / "sur"
    rc = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(art),
            "--hidden",
            "16,16",
            "--epochs",
            "5",
            "--batch-size",
            "128",
            "--threads",
            "1",
            "--evaluate",
            "20",
            "--no-progress",
        ]
    )
    assert rc == 0
    sur = load_surrogate(art, dataset=small_dataset)
    assert sur.spec().hidden == (16, 16)
    assert sur.metrics["test"]["n_points"] == 20
    assert sur.metrics["test"]["mass_balance_residual"] <= 1e-9
    out = tmp_path / "eval"
    rc = main(["evaluate-surrogate", "--model", str(art), "--data", str(data), "--out", str(out), "--n-points", "25"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n_points"] == 25
    assert metrics["grid_interpolation_baseline"]["n_reactions"] == len(sur.reaction_ids)
    for name in metrics["figures"].values():
        assert (out / name).stat().st_size > 10_000


def test_evaluate_refuses_other_data(small_dataset, tmp_path, capsys):
    data = small_dataset.save(tmp_path / "grid")
    art = tmp_path / "sur"
    assert main(["train", "--data", str(data), "--out", str(art), "--epochs", "1", "--hidden", "8", "--no-progress"]) == 0
    import dataclasses

    other = dataclasses.replace(small_dataset, inputs=small_dataset.inputs * 0.5)
    other_dir = other.save(tmp_path / "other")
    rc = main(["evaluate-surrogate", "--model", str(art), "--data", str(other_dir), "--out", str(tmp_path / "e")])
    assert rc == 2
    assert "trained on data" in capsys.readouterr().err


def test_train_refuses_an_existing_artifact_before_training(small_dataset, tmp_path, capsys, monkeypatch):
    """An existing --out is refused before any training unless --overwrite (which then replaces it
    whole, with no hidden folder left)."""
    import mpc_bio.surrogate.training as training

    data = small_dataset.save(tmp_path / "grid")
    art = tmp_path / "sur"
    common = ["train", "--data", str(data), "--out", str(art), "--epochs", "1", "--hidden", "8", "--no-progress"]
    assert main(common) == 0
    before = (art / "surrogate.json").read_text()
    real = training.train_surrogate
    monkeypatch.setattr(training, "train_surrogate", lambda *a, **k: pytest.fail("training started"))
    assert main(common) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert (art / "surrogate.json").read_text() == before
    monkeypatch.setattr(training, "train_surrogate", real)
    assert main([*common, "--seed", "3", "--overwrite"]) == 0
    assert (art / "surrogate.json").read_text() != before
    assert not list(tmp_path.glob(".sur.*"))


def test_train_continues_an_artifact(small_dataset, tmp_path, capsys):
    """`--init DIR` continues the artifact's weights (recorded in its info); an artifact of another
    architecture is refused with exit code 2 and the parameter named."""
    data = small_dataset.save(tmp_path / "grid")
    common = ["train", "--data", str(data), "--epochs", "2", "--threads", "1", "--no-progress"]
    assert main([*common, "--hidden", "8", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--hidden", "8", "--out", str(tmp_path / "b"), "--init", str(tmp_path / "a"), "--lr", "1e-3"]) == 0
    assert load_surrogate(tmp_path / "b").info["warm_start"]["adam_epochs"] == 2
    capsys.readouterr()
    rc = main([*common, "--hidden", "4", "--out", str(tmp_path / "c"), "--init", str(tmp_path / "a")])
    assert rc == 2
    assert "'init'" in capsys.readouterr().err


def test_train_records_reaction_weights(small_dataset, tmp_path, capsys):
    data = small_dataset.save(tmp_path / "grid")
    common = ["train", "--data", str(data), "--epochs", "1", "--hidden", "8", "--threads", "1", "--no-progress"]
    rc = main(
        [*common, "--out", str(tmp_path / "a"), "--reaction-weight", "PGI=3", "--reaction-weight", "ACONTa=2", "--lr-final-ratio", "1"]
    )
    assert rc == 0
    assert load_surrogate(tmp_path / "a").settings.reaction_weights == (("ACONTa", 2.0), ("PGI", 3.0))
    assert load_surrogate(tmp_path / "a").settings.lr_final_ratio == 1.0
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "b"), "--reaction-weight", "NOPE=3"]) == 2
    assert "'reaction_weights'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*common, "--out", str(tmp_path / "c"), "--reaction-weight", "PGI"])
    assert exc.value.code == 2
    assert "ID=WEIGHT" in capsys.readouterr().err


def test_train_with_kink_lines(small_dataset, tmp_path, capsys):
    """`--kink-line A1,A2,C` (repeatable, a leading minus with `=`), `--kink-width`, `--kink-extra-reaches` and
    `--kink-gain` reach the settings and the artifact; a malformed line or reach list exits with code 2 naming the
    expected form."""
    data = small_dataset.save(tmp_path / "grid")
    common = ["train", "--data", str(data), "--epochs", "1", "--hidden", "8", "--threads", "1", "--no-progress"]
    rc = main(
        [
            *common,
            "--out",
            str(tmp_path / "a"),
            "--kink-line",
            "1,-1,0",
            "--kink-line=-0.5,1,2",
            "--kink-width",
            "0.01",
            "--kink-gain",
            "30",
            "--kink-extra-reaches",
            "0.02,0.3",
        ]
    )
    assert rc == 0
    sur = load_surrogate(tmp_path / "a")
    assert sur.settings.kink_lines == ((1.0, -1.0, 0.0), (-0.5, 1.0, 2.0)) and sur.settings.kink_width == 0.01
    assert sur.settings.kink_gain == 30.0 and sur.settings.lr_final_ratio == 1e-3  # the default
    assert sur.settings.kink_extra_reaches == (0.02, 0.3) and sur.settings.kink_reach == 0.05  # the default
    assert sur.spec().n_kinks == 6  # two lines, three reaches each
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*common, "--out", str(tmp_path / "b"), "--kink-line", "1"])
    assert exc.value.code == 2
    assert "A1,...,Ak,C" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*common, "--out", str(tmp_path / "c"), "--kink-line", "1,-1,0", "--kink-extra-reaches", "0.02,x"])
    assert exc.value.code == 2
    assert "--kink-extra-reaches expects comma-separated numbers" in capsys.readouterr().err


def test_train_freeze_init(small_dataset, tmp_path):
    """`--freeze-init` with `--init` and a wider `--hidden` trains a branch beside the init: the artifact has the
    summed widths, the init's first-layer weights unchanged (exactly) and freeze_init recorded."""
    data = small_dataset.save(tmp_path / "grid")
    common = ["train", "--data", str(data), "--epochs", "2", "--threads", "1", "--no-progress"]
    assert main([*common, "--hidden", "8", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--hidden", "12", "--init", str(tmp_path / "a"), "--freeze-init", "--out", str(tmp_path / "b")]) == 0
    a, b = load_surrogate(tmp_path / "a"), load_surrogate(tmp_path / "b")
    assert b.settings.freeze_init and b.spec().hidden == (12,) and b.info["freeze_init"]["branch_hidden"] == [4]
    np.testing.assert_array_equal(b.spec().layers[0][0][:8], a.spec().layers[0][0])


def test_sigterm_stops_training_and_saves_the_best_weights(small_dataset, tmp_path):
    """`kill PID` (SIGTERM) during a long `mpc-bio train` in a subprocess: exit code 0 and the
    artifact saved with the best weights so far, its json naming the interrupted stage; the
    warning says so on stderr. The signal is sent once the Adam progress bar has started."""
    import signal

    from tests.signals import signal_when

    data = small_dataset.save(tmp_path / "grid")
    art = tmp_path / "sur"
    args = ["train", "--data", str(data), "--out", str(art), "--hidden", "8", "--epochs", "100000", "--patience", "100000"]
    rc, out, err = signal_when([*args, "--batch-size", "64", "--threads", "1"], "train surrogate", signal.SIGTERM)
    assert rc == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["interrupted"]["stage"] == "adam"
    sur = load_surrogate(art, dataset=small_dataset)
    assert sur.info["interrupted"]["stage"] == "adam" and sur.info["adam_epochs"] < 100000
    assert "Training interrupted during adam" in err


def test_only_the_first_sigterm_stops(capsys):
    """Inside the training block the first SIGTERM raises KeyboardInterrupt (training stops with the
    best weights); a second one, while those are finished and saved, is reported on stderr and
    ignored; after the block the previous handler is back."""
    import signal

    from mpc_bio.surrogate.cli import _sigterm_stops_training

    before = signal.getsignal(signal.SIGTERM)
    with _sigterm_stops_training():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # would raise again without the one-shot rule
    assert "already stopping" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
