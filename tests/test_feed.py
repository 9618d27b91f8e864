"""The one piecewise-constant feed profile: validation, the rate it holds, the names it goes by."""

from __future__ import annotations

import pytest

from mpc_bio.errors import MpcBioError
from mpc_bio.feed import FeedProfile, ProcessSettingsError


def test_rate_holds_each_segment_from_its_switching_time():
    f = FeedProfile(times=(0.0, 2.0, 5.0), rates=(0.0, 0.1, 0.02))
    assert [f.rate(t) for t in (0.0, 1.999, 2.0, 4.0, 5.0, 100.0)] == [0.0, 0.0, 0.1, 0.1, 0.02, 0.02]
    assert f.rate(2.0 - 1e-13) == 0.1  # a switching time within 1e-12 h counts as reached
    assert f.rate(-1.0) == 0.0
    assert f.times == (0.0, 2.0, 5.0) and isinstance(f.times[1], float)


@pytest.mark.parametrize(
    ("times", "rates", "match"),
    [
        ((0.0, 5.0, 4.0), (0.0, 0.1, 0.2), "'times'.*starts at 0 and increases strictly"),
        ((1.0,), (0.1,), "'times'.*starts at 0 and increases strictly"),
        ((0.0, 5.0), (0.1,), "'rates'.*equal length to times"),
        ((), (), "'times'.*at least 1 item"),
        ((0.0,), (-0.1,), r"'rates' parameter of FeedProfile must be a list of at least 1 item, each item a finite number >= 0 \(L/h\)"),
        ((0.0,), (float("nan"),), "'rates'"),
        ((0.0, True), (0.1, 0.2), "'times'"),
        (3.0, (0.1,), "'times' parameter of FeedProfile must be a list"),
    ],
)
def test_bad_profiles_raise_naming_the_parameter(times, rates, match):
    with pytest.raises(ProcessSettingsError, match=match):
        FeedProfile(times=times, rates=rates)


def test_one_class_under_every_name():
    """The process stage, NOMAD and the verification settings hand out the same class."""
    import mpc_bio.nomad as nomad
    import mpc_bio.process as process
    from mpc_bio.nomad.nra_settings import VerificationSettings

    assert process.FeedProfile is FeedProfile and nomad.FeedProfile is FeedProfile
    assert process.ProcessSettingsError is ProcessSettingsError and issubclass(ProcessSettingsError, MpcBioError)
    vs = VerificationSettings(feed_times=(0.0, 3.0), feed_rates=(0.0, 0.02))
    assert vs.feed_profile() == FeedProfile(times=(0.0, 3.0), rates=(0.0, 0.02))
