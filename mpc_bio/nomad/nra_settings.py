"""Settings of the NOMAD design stage: NRA, ranking, verification and sensitivity.

One frozen, typed dataclass per step, each validated on creation. Every field states its unit
in its docstring; fold changes are plain ratios (3.0 means "at most 3x up or 1/3x down"),
log quantities are natural logarithms. Defaults follow the NOMAD paper (Methods, "Robust
strain design using kinetic models"): 3-fold concentrations, 5-fold enzymes, 3 interventions,
at most 20% growth reduction, all designs within 5% of the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from mpc_bio.feed import FeedProfile

__all__ = [
    "NRASettings",
    "RankingSettings",
    "VerificationSettings",
    "SensitivitySettings",
    "DesignStudySettings",
]


def _positive(name: str, value: float, *, owner: str, strict: bool = True) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"The '{name}' parameter of {owner} must be a finite number. Got {value!r} instead.")
    if (strict and value <= 0) or (not strict and value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"The '{name}' parameter of {owner} must be {bound}. Got {value!r} instead.")


def _unknown_keys(cls: type, data: Mapping[str, Any]) -> None:
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(
            f"Unknown key(s) {extra} for {cls.__name__}; expected a subset of {sorted(known)}."
        )


@dataclass(frozen=True)
class NRASettings:
    """Settings of one Network Response Analysis (NRA) MILP and its enumeration.

    Attributes
    ----------
    max_concentration_fold : float
        Largest allowed fold change of every intracellular metabolite concentration,
        dependent (conserved-moiety) metabolites included (ratio, > 1). Default 3.
    max_enzyme_fold : float
        Largest allowed up-regulation of an enzyme activity (ratio, > 1). Default 5.
    max_enzyme_down_fold : float or None
        Largest allowed down-regulation (ratio, > 1; 5 means activity >= 1/5 of reference).
        ``None`` uses ``max_enzyme_fold``.
    allow_knockouts : bool
        When True, down-regulation may go to ``knockout_fold`` (a near-knockout in the
        log-linear model, which cannot represent an activity of exactly zero).
    knockout_fold : float
        Down-regulation bound used when ``allow_knockouts`` is True (ratio, > 1). Default 100.
    min_log_change : float
        Smallest |ln fold change| of an enzyme that counts as an intervention (ln units, >= 0).
        Keeps the binaries honest: an enzyme marked "used" really changes. Default ln(1.1).
    max_interventions : int
        Largest number of enzymes changed (coupled enzymes count once). Default 3.
    max_growth_reduction : float
        Largest allowed fractional drop of the growth flux (0..1); the MILP imposes
        dln v_growth >= ln(1 - max_growth_reduction). Default 0.2.
    max_flux_fold : float or None
        Optional bound on the fold change of every flux (ratio, > 1); None leaves fluxes free.
    thermodynamic_margin : float
        Every reaction must keep ln(Gamma/Keq) <= -margin (forward) or >= +margin (reverse)
        after the concentration changes (ln units, >= 0). For a reaction whose reference
        |ln(Gamma/Keq)| is below 2 * margin the margin used is half the reference value, so the
        reference state itself is always feasible. Default 1e-3.
    enumeration_fraction : float
        Designs are enumerated with integer cuts while their objective stays within this
        fraction of the optimum (objective >= optimum - fraction * |optimum|). Default 0.05.
    max_designs : int
        Stop enumerating after this many designs per model (the result says it was truncated).
    enumeration_strategy : str
        "feasible" (default): after the optimum, each integer-cut solve stops at the first
        up/down pattern whose objective clears the threshold (HiGHS ``mip_max_improving_sols``
        = 1) and that pattern's fold changes are then optimised by re-solving with its binaries
        fixed; the enumeration ends when the MILP with the threshold as an objective floor is
        infeasible. "optimal": each cut solve is proven optimal (designs come best first).
        Both give the same set of designs (all patterns whose best objective is within the
        threshold) and the designs are returned best first; they differ only in which designs
        are kept when ``max_designs`` truncates. Non-HiGHS solvers always use "optimal".
    excluded_enzymes : tuple of str
        Enzymes that may not be changed.
    coupled_enzymes : tuple of tuple of str
        Groups of enzymes changed together by the same log fold change (e.g. ("TKT1", "TKT2"),
        one gene); a group counts as one intervention.
    solver : str
        Pyomo solver name: "appsi_highs" (default, persistent HiGHS), "highs", or any other
        installed Pyomo MILP solver.
    mip_rel_gap : float
        Relative MIP gap passed to HiGHS-based solvers (dimensionless).
    time_limit_s : float
        Time limit per MILP solve (s).
    """

    max_concentration_fold: float = 3.0
    max_enzyme_fold: float = 5.0
    max_enzyme_down_fold: float | None = None
    allow_knockouts: bool = False
    knockout_fold: float = 100.0
    min_log_change: float = math.log(1.1)
    max_interventions: int = 3
    max_growth_reduction: float = 0.2
    max_flux_fold: float | None = None
    thermodynamic_margin: float = 1e-3
    enumeration_fraction: float = 0.05
    max_designs: int = 200
    enumeration_strategy: str = "feasible"
    excluded_enzymes: tuple[str, ...] = ()
    coupled_enzymes: tuple[tuple[str, ...], ...] = ()
    solver: str = "appsi_highs"
    mip_rel_gap: float = 1e-7
    time_limit_s: float = 60.0

    def __post_init__(self) -> None:
        owner = "NRASettings"
        for name in ("max_concentration_fold", "max_enzyme_fold", "knockout_fold"):
            value = getattr(self, name)
            _positive(name, value, owner=owner)
            if value <= 1.0:
                raise ValueError(f"The '{name}' parameter of {owner} must be > 1 (a fold change). Got {value!r} instead.")
        for name in ("max_enzyme_down_fold", "max_flux_fold"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value, owner=owner)
                if value <= 1.0:
                    raise ValueError(
                        f"The '{name}' parameter of {owner} must be > 1 (a fold change) or None. Got {value!r} instead."
                    )
        _positive("min_log_change", self.min_log_change, owner=owner, strict=False)
        if self.min_log_change >= min(self.log_up_bound, self.log_down_bound):
            raise ValueError(
                f"The 'min_log_change' parameter of {owner} must be below ln(max enzyme fold) = "
                f"{min(self.log_up_bound, self.log_down_bound):.4g}. Got {self.min_log_change!r} instead."
            )
        if not isinstance(self.max_interventions, int) or isinstance(self.max_interventions, bool) or self.max_interventions < 0:
            raise ValueError(
                f"The 'max_interventions' parameter of {owner} must be an integer >= 0. Got {self.max_interventions!r} instead."
            )
        if not (0.0 <= self.max_growth_reduction < 1.0):
            raise ValueError(
                f"The 'max_growth_reduction' parameter of {owner} must be in [0, 1). Got {self.max_growth_reduction!r} instead."
            )
        _positive("thermodynamic_margin", self.thermodynamic_margin, owner=owner, strict=False)
        if not (0.0 <= self.enumeration_fraction < 1.0):
            raise ValueError(
                f"The 'enumeration_fraction' parameter of {owner} must be in [0, 1). Got {self.enumeration_fraction!r} instead."
            )
        if self.enumeration_strategy not in ("feasible", "optimal"):
            raise ValueError(
                f"The 'enumeration_strategy' parameter of {owner} must be 'feasible' or 'optimal'. "
                f"Got {self.enumeration_strategy!r} instead."
            )
        if not isinstance(self.max_designs, int) or self.max_designs < 1:
            raise ValueError(f"The 'max_designs' parameter of {owner} must be an integer >= 1. Got {self.max_designs!r} instead.")
        _positive("mip_rel_gap", self.mip_rel_gap, owner=owner, strict=False)
        _positive("time_limit_s", self.time_limit_s, owner=owner)
        if not isinstance(self.solver, str) or not self.solver:
            raise ValueError(f"The 'solver' parameter of {owner} must be a Pyomo solver name. Got {self.solver!r} instead.")
        object.__setattr__(self, "excluded_enzymes", tuple(str(e) for e in self.excluded_enzymes))
        groups = tuple(tuple(str(e) for e in g) for g in self.coupled_enzymes)
        for g in groups:
            if len(g) < 2 or len(set(g)) != len(g):
                raise ValueError(
                    f"Each group in 'coupled_enzymes' of {owner} must list >= 2 distinct enzymes. Got {g!r} instead."
                )
        seen: set[str] = set()
        for g in groups:
            if seen & set(g):
                raise ValueError(f"An enzyme appears in two groups of 'coupled_enzymes' of {owner}: {sorted(seen & set(g))}.")
            seen |= set(g)
        object.__setattr__(self, "coupled_enzymes", groups)

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NRASettings":
        """Build from a TOML table; unknown keys raise."""
        _unknown_keys(cls, data)
        kw = dict(data)
        if "excluded_enzymes" in kw:
            kw["excluded_enzymes"] = tuple(kw["excluded_enzymes"])
        if "coupled_enzymes" in kw:
            kw["coupled_enzymes"] = tuple(tuple(g) for g in kw["coupled_enzymes"])
        return cls(**kw)


@dataclass(frozen=True)
class RankingSettings:
    """Settings of design ranking across the ensemble.

    Attributes
    ----------
    min_log_change : float
        Smallest |ln fold change| imposed on each member enzyme of a design when it is enforced
        in another model (ln units). Paper: 1e-6.
    top_n : int
        Number of top-ranked designs carried to verification and sensitivity.
    infeasible_gain : float
        Log yield gain counted for a model in which a design is infeasible, when computing the
        mean used for ranking (ln units). Default 0: the design is assumed not applied there.
    """

    min_log_change: float = 1e-6
    top_n: int = 5
    infeasible_gain: float = 0.0

    def __post_init__(self) -> None:
        _positive("min_log_change", self.min_log_change, owner="RankingSettings", strict=False)
        if not isinstance(self.top_n, int) or self.top_n < 1:
            raise ValueError(f"The 'top_n' parameter of RankingSettings must be an integer >= 1. Got {self.top_n!r} instead.")
        if not math.isfinite(self.infeasible_gain):
            raise ValueError(f"The 'infeasible_gain' parameter of RankingSettings must be finite. Got {self.infeasible_gain!r} instead.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RankingSettings":
        """Build from a TOML table; unknown keys raise."""
        _unknown_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class VerificationSettings:
    """Settings of the nonlinear batch and fed-batch verification of designs.

    The reactor is the kinetic reactor of :mod:`mpc_bio.nomad.reactor` (intracellular kinetics +
    medium substrate, biomass, product, volume), batch or under a piecewise-constant feed; see
    :mod:`mpc_bio.nomad.verification`.

    Attributes
    ----------
    t_end_h : float
        Simulated time (h).
    n_points : int
        Number of output time points (including t = 0).
    biomass0_gdw_per_l : float
        Inoculum (gDW/L).
    glucose0_mmol_per_l : float or None
        Initial glucose (mmol/L); None uses the reference concentration of the substrate's
        boundary metabolite, so the cells start at their reference steady state.
    product0_mmol_per_l : float
        Initial product (mmol/L).
    volume0_l : float
        Initial volume (L).
    feed_glucose_mmol_per_l : float
        Glucose concentration of the feed (mmol/L), fed-batch only.
    feed_times_h : tuple of float
        Start times of the piecewise-constant feed segments (h), first must be 0.
    feed_rates_l_per_h : tuple of float
        Feed rate of each segment (L/h), >= 0.
    product_mw_g_per_mol : float
        Molar mass of the product, for titers in g/L (anthranilate: 137.14 g/mol).
    batch_readout : str
        When batch titers, yields and biomass are compared. "reference_end" (default, the
        paper's protocol: all strains of a model are read at one fixed time, the end of that
        model's reference-strain fermentation, i.e. the first time its medium glucose falls
        below ``glucose_exhausted_fraction`` of the initial; t_end_h if it never does), or
        "t_end" (read at t_end_h; once every strain has exhausted the glucose this measures the
        overall yield only, and a slower-growing strain loses nothing for being slow).
    glucose_exhausted_fraction : float
        Fraction of the initial glucose that marks the end of a batch fermentation (0..1).
    check_steady_state : bool
        Also solve each strain's nonlinear steady state at the reference medium and its
        linear stability; a strain without a stable steady state counts as a failure.
    viability_concentration_fold : float or None
        With ``check_steady_state``, a strain is viable in a model only when every
        intracellular concentration of its steady state lies between x_min / fold and
        x_max * fold, with x_min and x_max the smallest and largest reference concentrations of
        the ensemble, i.e. the bounds the reference states were sampled in (ratio, > 1; None:
        no range check). Default 3, the NRA bound: an NRA design may move a metabolite 3-fold
        from a reference anywhere inside the range. Beyond it the kinetic parameters, sampled
        around the reference states, are extrapolated (the MCA baseline's steady states reach
        10^3-10^16 mM).
    """

    t_end_h: float = 16.0
    n_points: int = 65
    biomass0_gdw_per_l: float = 0.05
    glucose0_mmol_per_l: float | None = None
    product0_mmol_per_l: float = 0.0
    volume0_l: float = 1.0
    feed_glucose_mmol_per_l: float = 500.0
    feed_times_h: tuple[float, ...] = (0.0, 3.0)
    feed_rates_l_per_h: tuple[float, ...] = (0.0, 0.02)
    product_mw_g_per_mol: float = 137.14
    batch_readout: str = "reference_end"
    glucose_exhausted_fraction: float = 0.01
    check_steady_state: bool = True
    viability_concentration_fold: float | None = 3.0

    def __post_init__(self) -> None:
        owner = "VerificationSettings"
        fold = self.viability_concentration_fold
        if fold is not None:
            _positive("viability_concentration_fold", fold, owner=owner)
            if fold <= 1.0:
                raise ValueError(
                    f"The 'viability_concentration_fold' parameter of {owner} must be > 1 (a fold change) or None. "
                    f"Got {fold!r} instead."
                )
        if self.batch_readout not in ("reference_end", "t_end"):
            raise ValueError(
                f"The 'batch_readout' parameter of {owner} must be 'reference_end' or 't_end'. Got {self.batch_readout!r} instead."
            )
        if not (0.0 < self.glucose_exhausted_fraction < 1.0):
            raise ValueError(
                f"The 'glucose_exhausted_fraction' parameter of {owner} must be in (0, 1). "
                f"Got {self.glucose_exhausted_fraction!r} instead."
            )
        for name in ("t_end_h", "biomass0_gdw_per_l", "volume0_l", "product_mw_g_per_mol"):
            _positive(name, getattr(self, name), owner=owner)
        if self.glucose0_mmol_per_l is not None:
            _positive("glucose0_mmol_per_l", self.glucose0_mmol_per_l, owner=owner, strict=False)
        for name in ("product0_mmol_per_l", "feed_glucose_mmol_per_l"):
            _positive(name, getattr(self, name), owner=owner, strict=False)
        if not isinstance(self.n_points, int) or self.n_points < 2:
            raise ValueError(f"The 'n_points' parameter of {owner} must be an integer >= 2. Got {self.n_points!r} instead.")
        times = tuple(float(t) for t in self.feed_times_h)
        rates = tuple(float(r) for r in self.feed_rates_l_per_h)
        if len(times) != len(rates) or not times:
            raise ValueError(
                f"The 'feed_times_h' and 'feed_rates_l_per_h' parameters of {owner} must have the same non-zero length. "
                f"Got {len(times)} and {len(rates)} instead."
            )
        if times[0] != 0.0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"The 'feed_times_h' parameter of {owner} must start at 0 and increase. Got {times!r} instead.")
        if any(r < 0 or not math.isfinite(r) for r in rates):
            raise ValueError(f"The 'feed_rates_l_per_h' parameter of {owner} must be finite and >= 0. Got {rates!r} instead.")
        object.__setattr__(self, "feed_times_h", times)
        object.__setattr__(self, "feed_rates_l_per_h", rates)

    def feed_profile(self) -> FeedProfile:
        """The fed-batch feed as a :class:`~mpc_bio.feed.FeedProfile` (h, L/h)."""
        return FeedProfile(times=self.feed_times_h, rates=self.feed_rates_l_per_h)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VerificationSettings":
        """Build from a TOML table; unknown keys raise."""
        _unknown_keys(cls, data)
        kw = dict(data)
        for k in ("feed_times_h", "feed_rates_l_per_h"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass(frozen=True)
class SensitivitySettings:
    """Settings of the expression sensitivity analysis.

    Attributes
    ----------
    perturbation : float
        Half-width of the uniform relative perturbation of each mean fold change
        (0.5 means fold x U(0.5, 1.5)).
    n_draws : int
        Draws per design x model x mode.
    seed : int
        Seed of the random generator.
    """

    perturbation: float = 0.5
    n_draws: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.0 < self.perturbation < 1.0):
            raise ValueError(
                f"The 'perturbation' parameter of SensitivitySettings must be in (0, 1). Got {self.perturbation!r} instead."
            )
        if not isinstance(self.n_draws, int) or self.n_draws < 1:
            raise ValueError(f"The 'n_draws' parameter of SensitivitySettings must be an integer >= 1. Got {self.n_draws!r} instead.")
        if not isinstance(self.seed, int):
            raise ValueError(f"The 'seed' parameter of SensitivitySettings must be an integer. Got {self.seed!r} instead.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SensitivitySettings":
        """Build from a TOML table; unknown keys raise."""
        _unknown_keys(cls, data)
        return cls(**data)


@dataclass(frozen=True)
class DesignStudySettings:
    """All settings of ``mpc-bio nomad design``: one table per step in the scenario TOML.

    TOML layout::

        [nomad.design]               # this class: max_models, baseline_fold, n_workers, ...
        [nomad.design.nra]           # NRASettings
        [nomad.design.ranking]       # RankingSettings
        [nomad.design.verification]  # VerificationSettings
        [nomad.design.sensitivity]   # SensitivitySettings

    Attributes
    ----------
    max_models : int or None
        Use at most this many screened models (the first ones), None for all.
    baseline_fold : float
        Fold change of the MCA baseline design (ratio > 1; paper: 5).
    baseline_size : int
        Number of enzymes of the MCA baseline design (top yield control coefficients).
    n_workers : int
        Processes for the per-model NRA enumeration (1 = in-process).
    exclude_transport : bool
        Exclude the network's mass-action transport reactions (diffusion of O2, CO2, NH4, Pi
        and the product export) from the design targets: they stand for passive transport,
        not enzymes one would engineer. The lumped growth reaction is always excluded.
    show_progress : bool
        Show tqdm progress bars.
    """

    max_models: int | None = 10
    baseline_fold: float = 5.0
    baseline_size: int = 3
    n_workers: int = 1
    exclude_transport: bool = True
    show_progress: bool = True
    nra: NRASettings = field(default_factory=NRASettings)
    ranking: RankingSettings = field(default_factory=RankingSettings)
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    sensitivity: SensitivitySettings = field(default_factory=SensitivitySettings)

    def __post_init__(self) -> None:
        if self.max_models is not None and (not isinstance(self.max_models, int) or self.max_models < 1):
            raise ValueError(
                f"The 'max_models' parameter of DesignStudySettings must be an integer >= 1 or None. Got {self.max_models!r} instead."
            )
        _positive("baseline_fold", self.baseline_fold, owner="DesignStudySettings")
        if self.baseline_fold <= 1:
            raise ValueError(f"The 'baseline_fold' parameter of DesignStudySettings must be > 1. Got {self.baseline_fold!r} instead.")
        if not isinstance(self.n_workers, int) or self.n_workers < 1:
            raise ValueError(f"The 'n_workers' parameter of DesignStudySettings must be an integer >= 1. Got {self.n_workers!r} instead.")
        if not isinstance(self.baseline_size, int) or self.baseline_size < 1:
            raise ValueError(
                f"The 'baseline_size' parameter of DesignStudySettings must be an integer >= 1. Got {self.baseline_size!r} instead."
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DesignStudySettings":
        """Build from the ``[design]`` TOML table (sub-tables nra, ranking, verification, sensitivity)."""
        sub = {"nra": NRASettings, "ranking": RankingSettings, "verification": VerificationSettings, "sensitivity": SensitivitySettings}
        _unknown_keys(cls, data)
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key in sub:
                if not isinstance(value, Mapping):
                    raise ValueError(f"[design.{key}] must be a table. Got {value!r} instead.")
                kw[key] = sub[key].from_dict(value)
            else:
                kw[key] = value
        if kw.get("max_models") == 0:
            kw["max_models"] = None
        return cls(**kw)
