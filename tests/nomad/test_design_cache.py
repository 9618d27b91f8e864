"""The NRA enumeration and ranking of a design study are kept by their inputs and reused: a second
experiment on the same ensemble, or a run stopped during the enumeration, does not enumerate again
what was done, and gets the same designs and ranking."""

from __future__ import annotations

import numpy as np

from mpc_bio.nomad.design_study import design_cache_dir, rank_ensemble_designs
from mpc_bio.nomad.mca import compute_control_coefficients
from mpc_bio.nomad.nra_settings import DesignStudySettings, NRASettings, RankingSettings


def test_enumeration_and_ranking_are_cached_by_their_inputs(tmp_path, small_ensemble, stable_models, monkeypatch):
    """Two models: the first call enumerates 2 and ranks once (3 files kept); with one model's
    enumeration removed (a run stopped there) the next call enumerates only that model (counted)
    and reads the ranking back (the same file, not rewritten); designs and ranking are equal
    (exactly) to the first call's. (Other inputs give other keys: tests/nomad/test_ensemble_checkpoint.py.)"""
    import mpc_bio.nomad.nra as nra_module

    control = compute_control_coefficients(small_ensemble, stable_models[:2])
    settings = DesignStudySettings(
        max_models=2, n_workers=1, progress=False, nra=NRASettings(max_interventions=2, max_designs=2), ranking=RankingSettings(top_n=2)
    )
    cache = design_cache_dir(tmp_path / "ens")
    assert cache == tmp_path / "ens" / ".design_cache"
    real, calls = nra_module.enumerate_designs, []

    def counted(*args, **kwargs):
        calls.append(args[0].model_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(nra_module, "enumerate_designs", counted)
    first = rank_ensemble_designs(small_ensemble, control, settings, cache)
    assert len(calls) == 2
    enums = sorted(cache.glob("enumerate_model_designs-*.pkl"))
    (ranking_file,) = cache.glob("rank_designs-*.pkl")
    assert len(enums) == 2
    enums[1].unlink()
    inode = ranking_file.stat().st_ino
    calls.clear()
    second = rank_ensemble_designs(small_ensemble, control, settings, cache)
    assert len(calls) == 1 and ranking_file.stat().st_ino == inode
    assert len(list(cache.glob("enumerate_model_designs-*.pkl"))) == 2
    _, _, _, d1, r1, _ = first
    _, _, _, d2, r2, _ = second
    assert [d.label for d in d1.unique] == [d.label for d in d2.unique]
    assert [d.label for d in r1.designs] == [d.label for d in r2.designs]
    np.testing.assert_array_equal(r1.log_changes, r2.log_changes)  # rel 0, abs 0: the same solves, read back
