"""The piecewise-constant feed profile F(t) shared by every reactor of the package.

One :class:`FeedProfile` serves the fed-batch of the process stage
(:class:`mpc_bio.process.FedBatchSettings`, scenario table ``[feed]``), the kinetic reactor of
NOMAD's verification (:func:`mpc_bio.nomad.reactor.simulate_reactor`) and the feeds optimised
by co-design (:attr:`mpc_bio.codesign.FeedOptimum.profile`). The feed's glucose concentration
belongs to the reactor settings (``FedBatchSettings.feed_glucose``,
``VerificationSettings.feed_glucose``), not to the profile.

This module sits at the ground level of the package (it imports only :mod:`mpc_bio.errors` and
:mod:`mpc_bio.settings`), so nomad, which may depend on metabolism only, can use it without
importing the process stage.
The error of a bad profile is the process stage's settings error, defined here for that reason
and re-exported by :mod:`mpc_bio.process`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.settings import Settings, setting

__all__ = ["ProcessSettingsError", "FeedProfile"]


class ProcessSettingsError(MpcBioError):
    """A process setting has the wrong type, lies outside its range, or names a missing species."""


@dataclass(frozen=True)
class FeedProfile(Settings):
    """Piecewise-constant feed rate F(t): ``rates[i]`` on ``[times[i], times[i+1])``."""

    error: ClassVar[type] = ProcessSettingsError

    times: tuple[float, ...] = setting((0.0, 5.0), unit="h", low=0.0, min_items=1, doc="Switching times, first 0, strictly increasing.")
    rates: tuple[float, ...] = setting(
        (0.001, 0.02), unit="L/h", low=0.0, min_items=1, doc="Feed rate from each switching time on; the last holds to the end of the run."
    )

    def _check(self) -> None:
        if len(self.times) != len(self.rates):
            raise self.invalid("rates", f"a list of equal length to times ({len(self.times)} items)", self.rates)
        if self.times[0] != 0.0 or any(b <= a for a, b in zip(self.times, self.times[1:])):
            raise self.invalid("times", "a list that starts at 0 and increases strictly (h)", self.times)

    def rate(self, t: float) -> float:
        """Feed rate (L/h) in force at time ``t`` (h); a switching time within 1e-12 h counts as reached."""
        i = max(i for i, ti in enumerate(self.times) if ti <= t + 1e-12) if t >= 0 else 0
        return self.rates[i]
