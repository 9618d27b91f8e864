"""`mpc-bio train` states its expected time before the long work (measured on the first epochs); its set-up checks."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from mpc_bio.cli import main
from mpc_bio.surrogate import train_surrogate


def test_train_surrogate_reports_expected_time_once(small_dataset, small_settings):
    """One line after the second Adam epoch naming the epochs of each stage; the estimate is the
    elapsed time plus the second epoch's time per remaining epoch, so it lies between the time to
    that point and the whole training time times the epochs' ratio (a consistency check, no
    wall-clock limit)."""
    lines: list[str] = []
    s = dataclasses.replace(small_settings, epochs=6, finetune_epochs=2, finetune_power=8, lbfgs_steps=0, patience=100)
    sur = train_surrogate(small_dataset, s, progress=False, report=lines.append)
    assert len(lines) == 1
    assert re.fullmatch(
        r"training: 6 epochs \+ 2 L\^8 epochs, about [\d.]+ (s|min|h) on this machine \(measured on the first "
        r"epochs; early stopping may end it sooner\)",
        lines[0],
    ), lines[0]
    assert 0 < sur.info["expected_training_s"] <= 10 * sur.info["training_time_s"]


def test_cli_train_prints_expected_time(small_dataset, tmp_path, capsys):
    """`mpc-bio train` writes the statement on stderr (also with --no-progress)."""
    data, art = tmp_path / "d.npz", tmp_path / "art"
    small_dataset.save(data)
    assert main(["train", "--data", str(data), "--out", str(art), "--epochs", "4", "--hidden", "8", "--threads", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^training: 4 epochs, about [\d.]+ (s|min|h) on this machine", err, re.M), err


def test_bad_time_limit_leaves_the_thread_count(small_dataset, small_settings):
    """A refused ``time_limit_s`` raises before torch's thread count is set (it used to stay at the
    settings' ``num_threads`` after the error)."""
    before = torch.get_num_threads()
    s = dataclasses.replace(small_settings, num_threads=before + 1)
    with pytest.raises(ValueError, match="'time_limit_s'.*got -1.0"):
        train_surrogate(small_dataset, s, progress=False, time_limit_s=-1.0)
    assert torch.get_num_threads() == before
