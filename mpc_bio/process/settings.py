"""Settings of the fed-batch process (paper 1, Eq. 2): reactor, feed, uptake kinetics, simulation.

One frozen, validated dataclass per concern; :class:`FedBatchSettings` holds them all and
round-trips to the ``[reactor]``/``[kinetics]``/``[feed]``/``[simulation]`` tables of a scenario
TOML (:meth:`FedBatchSettings.from_dict`, :meth:`FedBatchSettings.to_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mpc_bio.feed import FeedProfile, ProcessSettingsError

__all__ = ["ProcessSettingsError", "UptakeKinetics", "FeedProfile", "FedBatchSettings"]


def _number(owner: str, name: str, value: Any, *, low: float | None = 0.0, strict: bool = False) -> float:
    """A finite float, >= low (> low when strict); the error names owner, parameter, expectation, value."""
    if isinstance(value, bool):
        value = None  # bools are not numbers here
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    ok = math.isfinite(x) and (low is None or (x > low if strict else x >= low))
    if not ok:
        rel = "" if low is None else (f" > {low}" if strict else f" >= {low}")
        raise ProcessSettingsError(
            f"The '{name}' parameter of {owner} must be a finite number{rel}. Got {value!r} instead."
        )
    return x


def _name(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ProcessSettingsError(f"The '{name}' parameter of {owner} must be a non-empty string. Got {value!r} instead.")
    return value


def _from_mapping(cls, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise ProcessSettingsError(f"{where} must be a table of {cls.__name__} settings. Got {data!r} instead.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProcessSettingsError(f"Unknown key(s) {unknown} in {where}; expected some of {sorted(known)}.")
    return cls(**dict(data))


@dataclass(frozen=True)
class UptakeKinetics:
    """How extracellular concentrations set the surrogate's inputs (uptake rates).

    Attributes
    ----------
    glucose_vmax : float
        Maximal specific glucose uptake, mmol/gDW/h (paper figure 2C: 10).
    glucose_km : float
        Michaelis constant of glucose uptake, mmol/L (paper figure 2C: 1). Uptake is
        ``vmax * c / (km + c)``, which vanishes at c = 0, so glucose never goes negative.
    oxygen : str
        ``"fixed"``: constant specific oxygen uptake ``oxygen_uptake`` (paper figure 3).
        ``"kla"``: a dissolved-oxygen state with gas-liquid transfer ``kla * (o2_saturation - c_O2)``
        and Michaelis-Menten uptake ``oxygen_vmax * c_O2 / (oxygen_km + c_O2)``.
    oxygen_uptake : float
        Fixed specific oxygen uptake, mmol/gDW/h (paper figure 3: 15).
    oxygen_vmax : float
        Maximal specific oxygen uptake in ``"kla"`` mode, mmol/gDW/h.
    oxygen_km : float
        Michaelis constant of oxygen uptake in ``"kla"`` mode, mmol/L.
    kla : float
        Volumetric oxygen transfer coefficient in ``"kla"`` mode, 1/h.
    o2_saturation : float
        Dissolved-oxygen saturation concentration in ``"kla"`` mode, mmol/L (air, 37 C: ~0.21).
    """

    glucose_vmax: float = 10.0
    glucose_km: float = 1.0
    oxygen: str = "fixed"
    oxygen_uptake: float = 15.0
    oxygen_vmax: float = 15.0
    oxygen_km: float = 0.005
    kla: float = 400.0
    o2_saturation: float = 0.21

    def __post_init__(self) -> None:
        o = "UptakeKinetics"
        for n in ("glucose_vmax", "glucose_km", "oxygen_vmax", "oxygen_km", "kla", "o2_saturation"):
            object.__setattr__(self, n, _number(o, n, getattr(self, n), strict=True))
        object.__setattr__(self, "oxygen_uptake", _number(o, "oxygen_uptake", self.oxygen_uptake))
        if self.oxygen not in ("fixed", "kla"):
            raise ProcessSettingsError(f"The 'oxygen' parameter of {o} must be 'fixed' or 'kla'. Got {self.oxygen!r} instead.")


@dataclass(frozen=True)
class FedBatchSettings:
    """A fed-batch reactor (paper 1, Eq. 2) with its feed, uptake kinetics and simulation grid.

    States: volume ``V`` [L], glucose ``n_glc`` [mmol], one amount ``n_<name>`` [mmol] per
    tracked product, biomass ``n_X`` [gDW], and ``n_o2`` [mmol] dissolved oxygen in ``"kla"`` mode.
    Input: feed rate ``F`` [L/h] of glucose at ``feed_glucose``.

    Attributes
    ----------
    volume0 : float
        Initial volume, L (> 0).
    glucose0 : float
        Initial glucose concentration, mmol/L.
    biomass0 : float
        Initial biomass concentration, gDW/L (> 0).
    products0 : dict of str to float
        Initial concentration of tracked products, mmol/L (missing ones start at 0).
    feed_glucose : float
        Glucose concentration of the feed C_in, mmol/L.
    products : dict of str to str
        Tracked secreted species: state name suffix -> exchange reaction id (e.g.
        ``{"ac": "EX_ac_e"}``). Their rates come from the surrogate's (or LP's) exchange fluxes.
    glucose_input, oxygen_input : str
        Names of the glucose and oxygen inputs of the surrogate / pFBA solver.
    glucose_exchange, oxygen_exchange : str
        Their exchange reaction ids (COBRA sign: uptake < 0).
    glucose_rate : str
        Source of the glucose consumption rate in the surrogate model: ``"kinetics"`` (default)
        uses the Michaelis-Menten uptake given to the cell model, which vanishes at zero glucose;
        ``"surrogate"`` uses the surrogate's predicted glucose exchange flux (paper Eq. 2b taken
        literally; exact carbon balances with a mass-balanced surrogate), its uptake gated like
        product uptakes by ``product_uptake_gate``.
    product_uptake_gate : float
        Concentration scale, mmol/L, below which a predicted *uptake* of a product (negative
        exchange flux) is switched off smoothly (``v * c / (c + gate)``), so products never go
        negative. 0 switches the gate off (exact bookkeeping of the cell model's fluxes; a product
        the model wrongly takes up can then go negative).
    kinetics : UptakeKinetics
        Uptake kinetics.
    feed : FeedProfile
        Feed rate profile.
    t_end : float
        Simulated time, h.
    output_step : float
        Spacing of the recorded trajectory points, h.
    dfba_step : float
        Step of the LP-in-the-loop dFBA (fluxes held constant per step), h.
    """

    volume0: float = 1.0
    glucose0: float = 20.0
    biomass0: float = 0.1
    products0: dict[str, float] = field(default_factory=dict)
    feed_glucose: float = 1000.0
    products: dict[str, str] = field(default_factory=lambda: {"ac": "EX_ac_e"})
    glucose_input: str = "glucose"
    oxygen_input: str = "oxygen"
    glucose_exchange: str = "EX_glc__D_e"
    oxygen_exchange: str = "EX_o2_e"
    glucose_rate: str = "kinetics"
    product_uptake_gate: float = 1e-3
    kinetics: UptakeKinetics = field(default_factory=UptakeKinetics)
    feed: FeedProfile = field(default_factory=FeedProfile)
    t_end: float = 24.0
    output_step: float = 0.1
    dfba_step: float = 0.005

    def __post_init__(self) -> None:
        o = "FedBatchSettings"
        for n in ("volume0", "biomass0", "t_end", "output_step", "dfba_step"):
            object.__setattr__(self, n, _number(o, n, getattr(self, n), strict=True))
        for n in ("glucose0", "feed_glucose", "product_uptake_gate"):
            object.__setattr__(self, n, _number(o, n, getattr(self, n)))
        for n in ("glucose_input", "oxygen_input", "glucose_exchange", "oxygen_exchange"):
            _name(o, n, getattr(self, n))
        if self.glucose_rate not in ("kinetics", "surrogate"):
            raise ProcessSettingsError(
                f"The 'glucose_rate' parameter of {o} must be 'kinetics' or 'surrogate'. Got {self.glucose_rate!r} instead."
            )
        if not isinstance(self.products, Mapping):
            raise ProcessSettingsError(
                f"The 'products' parameter of {o} must map species names to exchange reaction ids. "
                f"Got {self.products!r} instead."
            )
        prods = {}
        for k, v in self.products.items():
            _name(o, "products", k)
            _name(o, f"products[{k!r}]", v)
            if not k.isidentifier() or k in ("glc", "X", "o2"):
                raise ProcessSettingsError(
                    f"The product name {k!r} in the 'products' parameter of {o} must be an identifier other "
                    f"than 'glc', 'X' and 'o2' (it becomes the state name n_{k})."
                )
            if v in (self.glucose_exchange, self.oxygen_exchange):
                raise ProcessSettingsError(
                    f"The product {k!r} of {o} uses the exchange {v!r}, which is already the glucose or oxygen input."
                )
            prods[k] = v
        object.__setattr__(self, "products", prods)
        if not isinstance(self.products0, Mapping):
            raise ProcessSettingsError(f"The 'products0' parameter of {o} must be a table. Got {self.products0!r} instead.")
        p0 = {}
        for k, v in self.products0.items():
            if k not in prods:
                raise ProcessSettingsError(
                    f"The 'products0' parameter of {o} names the species {k!r}, which is not among the "
                    f"tracked products {sorted(prods)}."
                )
            p0[k] = _number(o, f"products0[{k!r}]", v)
        object.__setattr__(self, "products0", p0)
        if isinstance(self.kinetics, Mapping):
            object.__setattr__(self, "kinetics", _from_mapping(UptakeKinetics, self.kinetics, "kinetics"))
        if isinstance(self.feed, Mapping):
            object.__setattr__(self, "feed", _from_mapping(FeedProfile, self.feed, "feed"))
        if not isinstance(self.kinetics, UptakeKinetics) or not isinstance(self.feed, FeedProfile):
            raise ProcessSettingsError(f"The 'kinetics' and 'feed' parameters of {o} must be UptakeKinetics and FeedProfile.")
        if self.output_step > self.t_end:
            raise ProcessSettingsError(
                f"The 'output_step' parameter of {o} ({self.output_step} h) must not exceed t_end ({self.t_end} h)."
            )
        if self.dfba_step > self.output_step:
            raise ProcessSettingsError(
                f"The 'dfba_step' parameter of {o} ({self.dfba_step} h) must not exceed output_step ({self.output_step} h)."
            )

    # ------------------------------------------------------------------ views
    @property
    def state_names(self) -> tuple[str, ...]:
        """State names in order: V, n_glc, n_<product>..., n_X (, n_o2)."""
        names = ("V", "n_glc", *(f"n_{p}" for p in self.products), "n_X")
        return names + (("n_o2",) if self.kinetics.oxygen == "kla" else ())

    @property
    def state_units(self) -> dict[str, str]:
        """Unit of each state."""
        u = {n: "mmol" for n in self.state_names}
        u.update({"V": "L", "n_X": "gDW"})
        return u

    def initial_state(self):
        """Initial state vector (V in L, amounts in mmol, biomass in gDW)."""
        import numpy as np

        V = self.volume0
        x = [V, self.glucose0 * V, *(self.products0.get(p, 0.0) * V for p in self.products), self.biomass0 * V]
        if self.kinetics.oxygen == "kla":
            x.append(self.kinetics.o2_saturation * V)
        return np.array(x, dtype=float)

    def time_grid(self):
        """Output times (h): every ``output_step`` up to ``t_end``, plus the feed switching times."""
        import numpy as np

        n = int(round(self.t_end / self.output_step))
        grid = set(np.round(np.linspace(0.0, n * self.output_step, n + 1), 12).tolist())
        grid |= {t for t in self.feed.times if 0 < t < self.t_end}
        grid.add(self.t_end)
        return np.array(sorted(t for t in grid if t <= self.t_end + 1e-12))

    def to_dict(self) -> dict[str, Any]:
        """Nested dict (TOML-ready): kinetics and feed as sub-tables."""
        d = asdict(self)
        d["feed"] = {"times": list(self.feed.times), "rates": list(self.feed.rates)}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "reactor settings") -> "FedBatchSettings":
        """Build from a dict (unknown keys raise, naming ``where``)."""
        return _from_mapping(cls, data, where)
