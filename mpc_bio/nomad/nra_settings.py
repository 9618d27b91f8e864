"""Settings of the NOMAD design stage: NRA, ranking, verification and sensitivity.

One frozen settings class per step (:class:`mpc_bio.settings.Settings`: each field declares its
unit, range and doc). Fold changes are plain ratios (3.0 means "at most 3x up or 1/3x down"), log
quantities are natural logarithms. Defaults follow the NOMAD paper (Methods, "Robust strain
design using kinetic models"): 3-fold concentrations, 5-fold enzymes, 3 interventions, at most
20% growth reduction, all designs within 5% of the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.feed import FeedProfile
from mpc_bio.nomad.settings import NomadSettings
from mpc_bio.settings import FOLD, FRACTION, POSITIVE, setting

__all__ = [
    "NRASettings",
    "RankingSettings",
    "VerificationSettings",
    "SensitivitySettings",
    "DesignStudySettings",
]


@dataclass(frozen=True)
class NRASettings(NomadSettings):
    """Settings of one Network Response Analysis (NRA) MILP and its enumeration."""

    renamed: ClassVar[dict[str, str]] = {"time_limit_s": "time_limit"}

    max_concentration_fold: float = setting(
        3.0,
        **FOLD,
        doc=(
            "Largest allowed fold change of every intracellular metabolite concentration, dependent "
            "(conserved-moiety) metabolites included."
        ),
    )
    max_enzyme_fold: float = setting(5.0, **FOLD, doc="Largest allowed up-regulation of an enzyme activity.")
    max_enzyme_down_fold: float | None = setting(
        None, **FOLD, doc=("Largest allowed down-regulation (5 means activity >= 1/5 of reference); default max_enzyme_fold.")
    )
    allow_knockouts: bool = setting(
        False,
        doc=(
            "Down-regulation may go to knockout_fold (a near-knockout in the log-linear model, which cannot "
            "represent an activity of exactly zero)."
        ),
    )
    knockout_fold: float = setting(100.0, **FOLD, doc="Down-regulation bound used when allow_knockouts is true.")
    min_log_change: float = setting(
        math.log(1.1),
        unit="-",
        low=0.0,
        doc=(
            "Smallest |ln fold change| of an enzyme that counts as an intervention (ln units). Keeps the binaries "
            'honest: an enzyme marked "used" really changes.'
        ),
    )
    max_interventions: int = setting(3, low=0, doc="Largest number of enzymes changed (coupled enzymes count once).")
    max_growth_reduction: float = setting(
        0.2,
        **FRACTION,
        high_strict=True,
        doc=("Largest allowed fractional drop of the growth flux; the MILP imposes dln v_growth >= ln(1 - max_growth_reduction)."),
    )
    max_flux_fold: float | None = setting(None, **FOLD, doc="Bound on the fold change of every flux; default fluxes free.")
    thermodynamic_margin: float = setting(
        1e-3,
        unit="-",
        low=0.0,
        doc=(
            "Every reaction must keep ln(Gamma/Keq) <= -margin (forward) or >= +margin (reverse) after the "
            "concentration changes (ln units). For a reaction whose reference |ln(Gamma/Keq)| is below 2 margin the "
            "margin used is half the reference value, so the reference state itself is always feasible."
        ),
    )
    enumeration_fraction: float = setting(
        0.05,
        **FRACTION,
        high_strict=True,
        doc=(
            "Designs are enumerated with integer cuts while their objective stays within this fraction of the "
            "optimum (objective >= optimum - fraction |optimum|)."
        ),
    )
    max_designs: int = setting(200, low=1, doc=("Stop enumerating after this many designs per model (the result says it was truncated)."))
    enumeration_strategy: str = setting(
        "feasible",
        choices=("feasible", "optimal"),
        doc=(
            'How designs are enumerated. "feasible": after the optimum, each integer-cut solve stops at the first '
            "up/down pattern whose objective clears the threshold (HiGHS mip_max_improving_sols = 1) and that "
            "pattern's fold changes are then optimised by re-solving with its binaries fixed; the enumeration ends "
            'when the MILP with the threshold as an objective floor is infeasible. "optimal": each cut solve is '
            "proven optimal (designs come best first). Both give the same set of designs (all patterns whose best "
            "objective is within the threshold), returned best first; they differ only in which designs are kept "
            'when max_designs truncates. Non-HiGHS solvers always use "optimal".'
        ),
    )
    excluded_enzymes: tuple[str, ...] = setting((), doc="Enzymes that may not be changed.")
    coupled_enzymes: tuple[tuple[str, ...], ...] = setting(
        (),
        doc=(
            'Groups of enzymes changed together by the same log fold change: [["TKT1", "TKT2"], ...] (one '
            "gene); a group counts as one intervention."
        ),
    )
    solver: str = setting(
        "appsi_highs", doc=('Pyomo solver name: "appsi_highs" (persistent HiGHS), "highs", or any other installed Pyomo MILP solver.')
    )
    mip_rel_gap: float = setting(1e-7, unit="-", low=0.0, doc="Relative MIP gap passed to HiGHS-based solvers.")
    time_limit: float = setting(60.0, unit="s", **POSITIVE, doc="Time limit per MILP solve.")

    def _check(self) -> None:
        if self.min_log_change >= min(self.log_up_bound, self.log_down_bound):
            raise self.invalid(
                "min_log_change", f"below ln(max enzyme fold) = {min(self.log_up_bound, self.log_down_bound):.4g}", self.min_log_change
            )
        seen: set[str] = set()
        for g in self.coupled_enzymes:
            if len(g) < 2 or len(set(g)) != len(g):
                raise self.invalid("coupled_enzymes", "groups of >= 2 distinct enzymes", g)
            if seen & set(g):
                raise self.invalid("coupled_enzymes", "groups without a shared enzyme", sorted(seen & set(g)))
            seen |= set(g)

    @property
    def log_up_bound(self) -> float:
        """ln of the largest up-regulation (ln units)."""
        return math.log(self.max_enzyme_fold)

    @property
    def log_down_bound(self) -> float:
        """ln of the largest down-regulation (ln units); the knockout fold when knockouts are allowed."""
        if self.allow_knockouts:
            return math.log(self.knockout_fold)
        return math.log(self.max_enzyme_down_fold if self.max_enzyme_down_fold is not None else self.max_enzyme_fold)


@dataclass(frozen=True)
class RankingSettings(NomadSettings):
    """Settings of design ranking across the ensemble."""

    min_log_change: float = setting(
        1e-6,
        unit="-",
        low=0.0,
        doc=(
            "Smallest |ln fold change| imposed on each member enzyme of a design when it is enforced in another "
            "model (ln units; paper: 1e-6)."
        ),
    )
    top_n: int = setting(5, low=1, doc="Number of top-ranked designs carried to verification and sensitivity.")
    infeasible_gain: float = setting(
        0.0,
        unit="-",
        doc=(
            "Log yield gain counted for a model in which a design is infeasible, in the mean used for ranking (ln "
            "units; 0: the design is assumed not applied there)."
        ),
    )


@dataclass(frozen=True)
class VerificationSettings(NomadSettings):
    """Settings of the nonlinear batch and fed-batch verification of designs.

    The reactor is the kinetic reactor of :mod:`mpc_bio.nomad.reactor` (intracellular kinetics +
    medium substrate, biomass, product, volume), batch or under a piecewise-constant feed; see
    :mod:`mpc_bio.nomad.verification`.
    """

    renamed: ClassVar[dict[str, str]] = {
        "t_end_h": "batch_time",
        "biomass0_gdw_per_l": "biomass0",
        "glucose0_mmol_per_l": "glucose0",
        "product0_mmol_per_l": "product0",
        "volume0_l": "volume0",
        "feed_glucose_mmol_per_l": "feed_glucose",
        "feed_times_h": "feed_times",
        "feed_rates_l_per_h": "feed_rates",
        "product_mw_g_per_mol": "product_mw",
    }

    batch_time: float = setting(16.0, unit="h", **POSITIVE, doc="Simulated time (the batch length).")
    n_points: int = setting(65, low=2, doc="Number of output time points (including t = 0).")
    biomass0: float = setting(0.05, unit="gDW/L", **POSITIVE, doc="Inoculum.")
    glucose0: float | None = setting(
        None,
        unit="mmol/L",
        low=0.0,
        doc=(
            "Initial glucose; default the reference concentration of the substrate's boundary metabolite, so the "
            "cells start at their reference steady state."
        ),
    )
    product0: float = setting(0.0, unit="mmol/L", low=0.0, doc="Initial product.")
    volume0: float = setting(1.0, unit="L", **POSITIVE, doc="Initial volume.")
    feed_glucose: float = setting(500.0, unit="mmol/L", low=0.0, doc="Glucose concentration of the feed (fed-batch only).")
    feed_times: tuple[float, ...] = setting(
        (0.0, 3.0), unit="h", low=0.0, min_items=1, doc=("Start times of the piecewise-constant feed segments; the first is 0.")
    )
    feed_rates: tuple[float, ...] = setting((0.0, 0.02), unit="L/h", low=0.0, min_items=1, doc="Feed rate of each segment.")
    product_mw: float = setting(
        137.14, unit="g/mol", **POSITIVE, doc=("Molar mass of the product, for titers in g/L (anthranilate: 137.14 g/mol).")
    )
    batch_readout: str = setting(
        "reference_end",
        choices=("reference_end", "batch_time"),
        renamed_choices={"t_end": "batch_time"},
        doc=(
            'When batch titers, yields and biomass are compared. "reference_end" (the paper\'s protocol): all '
            "strains of a model are read at one fixed time, the end of that model's reference-strain fermentation, "
            "i.e. the first time its medium glucose falls below glucose_exhausted_fraction of the initial "
            '(batch_time if it never does). "batch_time": read at batch_time; once every strain has exhausted the '
            "glucose this measures the overall yield only, and a slower-growing strain loses nothing for being slow."
        ),
    )
    glucose_exhausted_fraction: float = setting(
        0.01,
        **FRACTION,
        strict=True,
        high_strict=True,
        doc=("Fraction of the initial glucose that marks the end of a batch fermentation."),
    )
    check_steady_state: bool = setting(
        True,
        doc=(
            "Also solve each strain's nonlinear steady state at the reference medium and its linear stability; a "
            "strain without a stable steady state counts as a failure."
        ),
    )
    viability_concentration_fold: float | None = setting(
        3.0,
        **FOLD,
        doc=(
            "With check_steady_state, a strain is viable in a model only when every intracellular concentration of "
            "its steady state lies within fold of the same model's reference concentration (None: no bound). 3 is the "
            "NRA bound (max_concentration_fold); the design study and the experiments hold each design to the bound "
            "of the NRA that made it and every other strain to the same bound (mpc_bio.nomad.viability.ViabilityRule)."
        ),
    )
    viability_min_growth_ratio: float | None = setting(
        0.8,
        **FRACTION,
        doc=(
            "With check_steady_state, a strain is viable only when its steady-state growth flux is at least this "
            "fraction of the reference (the NRA bound 1 - max_growth_reduction; None: no bound)."
        ),
    )

    def _check(self) -> None:
        times, rates = self.feed_times, self.feed_rates
        if len(times) != len(rates):
            raise self.invalid("feed_rates", f"a list as long as feed_times ({len(times)} items)", rates)
        if times[0] != 0.0 or any(b <= a for a, b in zip(times, times[1:])):
            raise self.invalid("feed_times", "a list of times starting at 0 and increasing (h)", times)

    def feed_profile(self) -> FeedProfile:
        """The fed-batch feed as a :class:`~mpc_bio.feed.FeedProfile` (h, L/h)."""
        return FeedProfile(times=self.feed_times, rates=self.feed_rates)


@dataclass(frozen=True)
class SensitivitySettings(NomadSettings):
    """Settings of the expression sensitivity analysis."""

    perturbation: float = setting(
        0.5,
        **FRACTION,
        strict=True,
        high_strict=True,
        doc=("Half-width of the uniform relative perturbation of each mean fold change (0.5 means fold x U(0.5, 1.5))."),
    )
    n_draws: int = setting(10, low=1, doc="Draws per design x model x mode.")
    seed: int = setting(0, low=0, doc="Seed of the random generator.")


@dataclass(frozen=True)
class DesignStudySettings(NomadSettings):
    """All settings of ``mpc-bio nomad design``: one table per step in the scenario TOML.

    TOML layout::

        [nomad.design]               # this class: max_models, baseline_fold, n_workers, ...
        [nomad.design.nra]           # NRASettings
        [nomad.design.ranking]       # RankingSettings
        [nomad.design.verification]  # VerificationSettings
        [nomad.design.sensitivity]   # SensitivitySettings
    """

    renamed: ClassVar[dict[str, str]] = {"show_progress": "progress"}

    max_models: int | None = setting(
        10, low=0, doc=("Screened models carried to NRA, the first ones (in co-design also the ensemble members); 0 or None: all.")
    )
    baseline_fold: float = setting(5.0, **FOLD, doc="Fold change of the MCA baseline design (paper: 5).")
    baseline_size: int = setting(3, low=1, doc="Number of enzymes of the MCA baseline design (top yield control coefficients).")
    n_workers: int = setting(1, low=1, doc="Processes for the per-model NRA enumeration (1 = in-process).")
    exclude_transport: bool = setting(
        True,
        doc=(
            "Exclude the network's mass-action transport reactions (diffusion of O2, CO2, NH4, Pi and the product "
            "export) from the design targets: they stand for passive transport, not enzymes one would engineer. The "
            "lumped growth reaction is always excluded."
        ),
    )
    progress: bool = setting(True, doc="Show progress bars.")
    nra: NRASettings = setting(factory=NRASettings, doc="[nomad.design.nra] NRA MILP and enumeration.")
    ranking: RankingSettings = setting(factory=RankingSettings, doc="[nomad.design.ranking] design ranking over the models.")
    verification: VerificationSettings = setting(
        factory=VerificationSettings, doc=("[nomad.design.verification] the verification reactor (in co-design, of every simulation).")
    )
    sensitivity: SensitivitySettings = setting(
        factory=SensitivitySettings, doc=("[nomad.design.sensitivity] expression sensitivity (nomad design only).")
    )

    def _check(self) -> None:
        if self.max_models == 0:
            self._set("max_models", None)
