"""The piecewise-constant feed profile F(t) shared by every reactor of the package.

One :class:`FeedProfile` serves the fed-batch of the process stage
(:class:`mpc_bio.process.FedBatchSettings`, scenario table ``[feed]``), the kinetic reactor of
NOMAD's verification (:func:`mpc_bio.nomad.reactor.simulate_reactor`) and the feeds optimised
by co-design (:attr:`mpc_bio.codesign.FeedOptimum.profile`). The feed's glucose concentration
belongs to the reactor settings (``FedBatchSettings.feed_glucose``,
``VerificationSettings.feed_glucose_mmol_per_l``), not to the profile.

This module sits at the ground level of the package (it imports only :mod:`mpc_bio.errors`),
so nomad, which may depend on metabolism only, can use it without importing the process stage.
The error of a bad profile is the process stage's settings error, defined here for that reason
and re-exported by :mod:`mpc_bio.process`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = ["ProcessSettingsError", "FeedProfile"]


class ProcessSettingsError(MpcBioError):
    """A process setting has the wrong type, lies outside its range, or names a missing species."""


def _numbers(name: str, values: Any, low: float | None) -> tuple[float, ...]:
    """Finite floats (>= ``low`` when given); the error names the parameter and the bad value."""
    out = []
    for v in values:
        x = math.nan if isinstance(v, bool) else v
        try:
            x = float(x)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x) or (low is not None and x < low):
            rel = "" if low is None else f" >= {low}"
            raise ProcessSettingsError(
                f"The '{name}' parameter of FeedProfile must be a finite number{rel}. Got {v!r} instead."
            )
        out.append(x)
    return tuple(out)


@dataclass(frozen=True)
class FeedProfile:
    """Piecewise-constant feed rate F(t): ``rates[i]`` on ``[times[i], times[i+1])``.

    Attributes
    ----------
    times : tuple of float
        Switching times (h), strictly increasing, the first 0.
    rates : tuple of float
        Feed rates (L/h), >= 0, one per switching time; the last holds to the end of the run.
    """

    times: tuple[float, ...] = (0.0, 5.0)
    rates: tuple[float, ...] = (0.001, 0.02)

    def __post_init__(self) -> None:
        o = "FeedProfile"
        try:
            times = _numbers("times", self.times, None)
            rates = _numbers("rates", self.rates, 0.0)
        except TypeError:
            raise ProcessSettingsError(f"The 'times' and 'rates' of {o} must be lists of numbers.") from None
        if not times or len(times) != len(rates):
            raise ProcessSettingsError(
                f"The 'times' and 'rates' parameters of {o} must be non-empty and of equal length. "
                f"Got {len(times)} times and {len(rates)} rates instead."
            )
        if times[0] != 0.0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ProcessSettingsError(
                f"The 'times' parameter of {o} must start at 0 and increase strictly (h). Got {list(times)} instead."
            )
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "rates", rates)

    def rate(self, t: float) -> float:
        """Feed rate (L/h) in force at time ``t`` (h); a switching time within 1e-12 h counts as reached."""
        i = max(i for i, ti in enumerate(self.times) if ti <= t + 1e-12) if t >= 0 else 0
        return self.rates[i]
