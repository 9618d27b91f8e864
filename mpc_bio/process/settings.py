"""Settings of the fed-batch process (paper 1, Eq. 2): reactor, feed, uptake kinetics, simulation.

One frozen, validated dataclass per concern; :class:`FedBatchSettings` holds them all and
round-trips to the ``[reactor]``/``[kinetics]``/``[feed]``/``[simulation]`` tables of a scenario
TOML (:meth:`FedBatchSettings.from_dict`, :meth:`FedBatchSettings.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.feed import FeedProfile, ProcessSettingsError
from mpc_bio.settings import POSITIVE, Settings, setting

__all__ = ["ProcessSettingsError", "UptakeKinetics", "FeedProfile", "FedBatchSettings"]


@dataclass(frozen=True)
class UptakeKinetics(Settings):
    """How extracellular concentrations set the surrogate's inputs (uptake rates)."""

    error: ClassVar[type] = ProcessSettingsError

    glucose_vmax: float = setting(10.0, unit="mmol/gDW/h", **POSITIVE, doc=("Maximal specific glucose uptake (paper figure 2C: 10)."))
    glucose_km: float = setting(
        1.0,
        unit="mmol/L",
        **POSITIVE,
        doc=(
            "Michaelis constant of glucose uptake (paper figure 2C: 1). Uptake is vmax c / (km + c), which "
            "vanishes at c = 0, so glucose never goes negative."
        ),
    )
    oxygen: str = setting(
        "fixed",
        choices=("fixed", "kla"),
        doc=(
            'Fixed specific O2 uptake, or a dissolved-O2 state with kLa transfer. "fixed": constant specific '
            'oxygen uptake oxygen_uptake (paper figure 3). "kla": a dissolved-oxygen state with gas-liquid '
            "transfer kla (o2_saturation - c_O2) and Michaelis-Menten uptake oxygen_vmax c_O2 / (oxygen_km + c_O2)."
        ),
    )
    oxygen_uptake: float = setting(
        15.0, unit="mmol/gDW/h", low=0.0, doc=('Fixed specific O2 uptake (oxygen = "fixed"; paper figure 3: 15).')
    )
    oxygen_vmax: float = setting(15.0, unit="mmol/gDW/h", **POSITIVE, doc='Maximal specific O2 uptake (oxygen = "kla").')
    oxygen_km: float = setting(0.005, unit="mmol/L", **POSITIVE, doc='Michaelis constant of O2 uptake (oxygen = "kla").')
    kla: float = setting(400.0, unit="1/h", **POSITIVE, doc='Volumetric O2 transfer coefficient (oxygen = "kla").')
    o2_saturation: float = setting(
        0.21, unit="mmol/L", **POSITIVE, doc=('Dissolved O2 saturation (oxygen = "kla"; air, 37 C: about 0.21).')
    )


@dataclass(frozen=True)
class FedBatchSettings(Settings):
    """A fed-batch reactor (paper 1, Eq. 2) with its feed, uptake kinetics and simulation grid.

    States: volume ``V`` [L], glucose ``n_glc`` [mmol], one amount ``n_<name>`` [mmol] per
    tracked product, biomass ``n_X`` [gDW], and ``n_o2`` [mmol] dissolved oxygen in ``"kla"`` mode.
    Input: feed rate ``F`` [L/h] of glucose at ``feed_glucose``. Each field is documented where it
    is declared.
    """

    error: ClassVar[type] = ProcessSettingsError
    renamed: ClassVar[dict[str, str]] = {"t_end": "batch_time"}

    volume0: float = setting(1.0, unit="L", **POSITIVE, doc="Initial volume.")
    glucose0: float = setting(20.0, unit="mmol/L", low=0.0, doc="Initial glucose concentration.")
    biomass0: float = setting(0.1, unit="gDW/L", **POSITIVE, doc="Initial biomass concentration.")
    products0: dict[str, float] = setting({}, unit="mmol/L", low=0.0, doc=("Initial product concentrations (missing ones 0)."))
    feed_glucose: float = setting(1000.0, unit="mmol/L", low=0.0, doc="Glucose concentration of the feed.")
    products: dict[str, str] = setting(
        {"ac": "EX_ac_e"},
        doc=(
            'Tracked secreted species: state suffix -> exchange id (e.g. {"ac": "EX_ac_e"}). Their rates come '
            "from the surrogate's (or LP's) exchange fluxes."
        ),
    )
    glucose_input: str = setting("glucose", doc="Name of the surrogate's glucose input.")
    oxygen_input: str = setting("oxygen", doc="Name of the surrogate's oxygen input.")
    glucose_exchange: str = setting("EX_glc__D_e", doc="Glucose exchange reaction id (COBRA sign: uptake < 0).")
    oxygen_exchange: str = setting("EX_o2_e", doc="Oxygen exchange reaction id (COBRA sign: uptake < 0).")
    glucose_rate: str = setting(
        "kinetics",
        choices=("kinetics", "surrogate"),
        doc=(
            'Source of the glucose consumption rate. "kinetics" uses the Michaelis-Menten uptake given to the '
            'cell model, which vanishes at zero glucose; "surrogate" uses the surrogate\'s predicted glucose '
            "exchange flux (paper Eq. 2b taken literally; exact carbon balances with a mass-balanced surrogate), "
            "its uptake gated like product uptakes by product_uptake_gate."
        ),
    )
    product_uptake_gate: float = setting(
        1e-3,
        unit="mmol/L",
        low=0.0,
        doc=(
            "Concentration below which product uptake is switched off smoothly (0: off). A predicted uptake of a "
            "product (negative exchange flux) becomes v c / (c + gate), so products never go negative; 0 keeps the "
            "cell model's fluxes exactly (a product the model wrongly takes up can then go negative)."
        ),
    )
    kinetics: UptakeKinetics = setting(factory=UptakeKinetics, doc="Uptake kinetics.")
    feed: FeedProfile = setting(factory=FeedProfile, doc="Feed rate profile.")
    batch_time: float = setting(24.0, unit="h", **POSITIVE, doc="Simulated time.")
    output_step: float = setting(0.1, unit="h", **POSITIVE, doc="Spacing of the recorded trajectory points.")
    dfba_step: float = setting(0.005, unit="h", **POSITIVE, doc=("Step of the LP-in-the-loop dFBA (fluxes held constant per step)."))

    def _check(self) -> None:
        if any(not k.isidentifier() or k in ("glc", "X", "o2") for k in self.products):
            raise self.invalid(
                "products",
                "a table whose species names are identifiers other than 'glc', 'X' and 'o2' (each becomes the state n_<name>)",
                self.products,
            )
        inputs = (self.glucose_exchange, self.oxygen_exchange)
        if any(v in inputs for v in self.products.values()):
            raise self.invalid("products", f"a table of exchanges other than the glucose and oxygen inputs {inputs}", self.products)
        if set(self.products0) - set(self.products):
            raise self.invalid("products0", f"a table of the tracked products {sorted(self.products)}", self.products0)
        if self.output_step > self.batch_time:
            raise self.invalid("output_step", f"<= batch_time = {self.batch_time} h", self.output_step)
        if self.dfba_step > self.output_step:
            raise self.invalid("dfba_step", f"<= output_step = {self.output_step} h", self.dfba_step)

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
        """Output times (h): every ``output_step`` up to ``batch_time``, plus the feed switching times."""
        import numpy as np

        n = int(round(self.batch_time / self.output_step))
        grid = set(np.round(np.linspace(0.0, n * self.output_step, n + 1), 12).tolist())
        grid |= {t for t in self.feed.times if 0 < t < self.batch_time}
        grid.add(self.batch_time)
        return np.array(sorted(t for t in grid if t <= self.batch_time + 1e-12))
