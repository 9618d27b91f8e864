"""Settings of the NOMAD ensemble stage: network, reference state, sampling, screening, MCA.

One frozen, typed dataclass per step, validated on creation. Units: concentrations in mM
(mmol/L of cell volume), fluxes in mmol/gDW/h, time in hours, Gibbs energies in kJ/mol,
fold changes as plain ratios, log quantities as natural logarithms.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from mpc_bio.nomad.reduction import CORE_SUBSYSTEMS, PAPER_TARGETS
from mpc_bio.nomad.regulation import REGULATION_KINDS, SHIKIMATE_REGULATIONS

__all__ = [
    "DEFAULT_MODEL",
    "SMALL_MODEL",
    "NetworkSettings",
    "SteadyStateSettings",
    "SamplingSettings",
    "ScreeningSettings",
    "ExecutorSettings",
    "EnsembleStudySettings",
    "load_study_settings",
]


#: The default network: NOMAD's E. coli W3110 trpD9923 case reduced from the shipped iCH360.
DEFAULT_MODEL = "ich360_trpD9923"
#: The small network for fast runs: e_coli_core + the shikimate branch towards anthranilate.
SMALL_MODEL = "core_shikimate"


def _number(owner: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
            strict_low: bool = True, strict_high: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"The '{name}' parameter of {owner} must be a finite number. Got {value!r} instead.")
    if low is not None and (value <= low if strict_low else value < low):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be {'>' if strict_low else '>='} {low}. Got {value!r} instead."
        )
    if high is not None and (value >= high if strict_high else value > high):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be {'<' if strict_high else '<='} {high}. Got {value!r} instead."
        )


def _integer(owner: str, name: str, value: Any, *, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"The '{name}' parameter of {owner} must be an integer >= {low}. Got {value!r} instead.")


def _pair(owner: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
          positive: bool = False) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"The '{name}' parameter of {owner} must be a pair (low, high). Got {value!r} instead.")
    a, b = value
    for v in (a, b):
        _number(owner, name, v)
        if positive and v <= 0:
            raise ValueError(
                f"The '{name}' parameter of {owner} must hold positive numbers (> 0). Got {value!r} instead."
            )
        if low is not None and v < low or high is not None and v > high:
            raise ValueError(f"The '{name}' parameter of {owner} must lie in [{low}, {high}]. Got {value!r} instead.")
    if a > b:
        raise ValueError(f"The '{name}' parameter of {owner} must satisfy low <= high. Got {value!r} instead.")
    return float(a), float(b)


def _from_mapping(cls, data: Mapping[str, Any] | None):
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"Unknown key(s) {extra} for {cls.__name__}; expected a subset of {sorted(known)}.")
    for f in fields(cls):
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(tuple(v) if isinstance(v, list) else v for v in data[f.name])
    return cls(**data)


@dataclass(frozen=True)
class NetworkSettings:
    """How the kinetic network is cut out of a cobra model and its reference fluxes computed.

    Attributes
    ----------
    model : str
        ``"ich360_trpD9923"`` (default: NOMAD's anthranilate network from the iCH360 model shipped
        with mpc_bio: ANPRT removed, core subsystems, shikimate pathway and chorismate branches,
        glutamine synthesis, transports between cytosol and periplasm, one lumped growth
        reaction), ``"core_shikimate"`` (small and fast: COBRApy's e_coli_core + the shikimate
        branch of iJO1366 towards anthranilate; ``"anthranilate"`` is the same), ``"ich360"``
        (every iCH360 reaction carrying flux, growth unlumped), a bundled model name or a model file path.
    reactions : tuple of str or None
        Reactions of the kinetic network. ``None`` keeps every non-exchange reaction that
        carries flux in the reference pFBA (after the reduction, when there is one); an explicit
        list must contain only reactions with flux (a reaction without flux is an error).
    product_reaction : str
        Reaction whose flux is the product formation (default the anthranilate export ``ANTHt``).
    substrate_reaction : str or None
        Substrate uptake reaction inside the network (mmol/gDW/h); ``None`` takes the reaction
        consuming the extracellular metabolite of the first ``uptake_bounds`` exchange
        (``GLCpts`` in e_coli_core, ``GLCtex_copy1`` in iCH360).
    growth_reaction : str or None
        Growth reaction of the source model; ``None`` uses the model objective.
    knockouts : tuple of str
        Reactions removed before anything else (default ``("ANPRT",)``, the trpD9923 strain).
    uptake_bounds : tuple of (str, float)
        Exchange reactions fixed as uptakes (mmol/gDW/h, positive = uptake); default glucose 10.
    growth_fraction : float
        Reference growth as a fraction of the maximum growth (0..1]; default 0.9.
    product_fraction : float
        Product flux fixed at this fraction of its maximum at that growth (0..1]; default 0.3.
    flux_tolerance : float
        Fluxes with |v| below this count as zero (mmol/gDW/h); default 1e-7.
    reduce : bool or None
        Keep only ``core_subsystems``, transports and ``keep_reactions``, lumping every other
        reaction with the biomass reaction into one growth reaction
        (:mod:`mpc_bio.nomad.reduction`). ``None``: when the source model is resolved from
        ``model = "ich360_trpD9923"`` (not for a cobra model handed to ``build_network``).
    core_subsystems : tuple of str
        Subsystems (iJO1366 names) kept by the reduction.
    keep_reactions : tuple of str
        Reactions kept by the reduction even where the reference pFBA gives them no flux (NOMAD's
        design targets): each then carries at least ``min_target_flux`` in the direction the
        reference constraints allow (forward, as written in the model, when both are).
    min_target_flux : float
        Smallest |flux| given to a ``keep_reactions`` reaction that pFBA leaves at zero (mmol/gDW/h).
    min_core_flux : float
        The reduction lumps core and transport reactions carrying less than this into growth
        (mmol/gDW/h; default 0.01, 0.1 % of the glucose uptake: trace pathways such as formate
        export would otherwise add pools turning over in hours).
    fixed_compartments : tuple of str
        Compartments whose metabolites are boundary species with fixed concentrations (default ``("e",)``).
    kinetic_exclusions : tuple of str
        Metabolite base ids (without compartment) left out of rate laws and of mass-action ratios,
        as in transformed Gibbs energies (protons at fixed pH, water at unit activity).
    regulations : tuple of (str, str, str)
        Allosteric regulation, (reaction id, metabolite id, kind) with kind one of
        ``"activation"``, ``"noncompetitive"`` (or ``"inhibition"``), ``"competitive"``,
        ``"uncompetitive"``, ``"mixed"`` (:mod:`mpc_bio.nomad.regulation`; constants in mM,
        sampled like Km). Default: the end-product feedback of the shikimate pathway
        (:data:`~mpc_bio.nomad.regulation.SHIKIMATE_REGULATIONS`: DDPA by phenylalanine and
        tyrosine, ANS by tryptophan, the chorismate mutase branches by their end products).
    strict_regulations : bool
        When false (default) a regulation whose reaction or metabolite is not in the network is
        skipped and listed in ``KineticNetwork.unapplied_regulations``; when true it is an error.
    """

    model: str = "ich360_trpD9923"
    reactions: tuple[str, ...] | None = None
    product_reaction: str = "ANTHt"
    substrate_reaction: str | None = None
    growth_reaction: str | None = None
    knockouts: tuple[str, ...] = ("ANPRT",)
    uptake_bounds: tuple[tuple[str, float], ...] = (("EX_glc__D_e", 10.0),)
    growth_fraction: float = 0.9
    product_fraction: float = 0.3
    flux_tolerance: float = 1e-7
    reduce: bool | None = None
    core_subsystems: tuple[str, ...] = CORE_SUBSYSTEMS
    keep_reactions: tuple[str, ...] = PAPER_TARGETS
    min_target_flux: float = 0.05
    min_core_flux: float = 0.01
    fixed_compartments: tuple[str, ...] = ("e",)
    kinetic_exclusions: tuple[str, ...] = ("h", "h2o")
    regulations: tuple[tuple[str, str, str], ...] = SHIKIMATE_REGULATIONS
    strict_regulations: bool = False

    def __post_init__(self) -> None:
        o = "NetworkSettings"
        for item in self.regulations:
            if len(item) != 3 or item[2] not in REGULATION_KINDS:
                raise ValueError(
                    f"The 'regulations' parameter of {o} must hold (reaction, metabolite, kind) triples with "
                    f"kind one of {list(REGULATION_KINDS)}. Got {item!r} instead."
                )
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"The 'model' parameter of {o} must be a non-empty string. Got {self.model!r} instead.")
        if self.reactions is not None:
            if not all(isinstance(r, str) for r in self.reactions) or len(self.reactions) == 0:
                raise ValueError(
                    f"The 'reactions' parameter of {o} must be None or a non-empty list of reaction ids. "
                    f"Got {self.reactions!r} instead."
                )
        for name in ("product_reaction", "substrate_reaction"):
            v = getattr(self, name)
            if name == "substrate_reaction" and v is None:
                continue
            if not isinstance(v, str) or not v:
                raise ValueError(f"The '{name}' parameter of {o} must be a reaction id. Got {v!r} instead.")
        for rid, val in self.uptake_bounds:
            _number(o, f"uptake_bounds[{rid}]", val, low=0.0, strict_low=False)
        _number(o, "growth_fraction", self.growth_fraction, low=0.0, high=1.0)
        _number(o, "product_fraction", self.product_fraction, low=0.0, high=1.0)
        _number(o, "flux_tolerance", self.flux_tolerance, low=0.0)
        _number(o, "min_target_flux", self.min_target_flux, low=0.0)
        _number(o, "min_core_flux", self.min_core_flux, low=0.0, strict_low=False)
        if self.reduce is not None and not isinstance(self.reduce, bool):
            raise ValueError(f"The 'reduce' parameter of {o} must be true, false or None. Got {self.reduce!r} instead.")


@dataclass(frozen=True)
class SteadyStateSettings:
    """Sampling of reference fluxes, concentrations and reaction Gibbs energies (:mod:`mpc_bio.nomad.steady_state`).

    Attributes
    ----------
    method : str
        ``"tfa"`` (concentrations, Delta_r G'0 and fluxes sampled jointly, consistent with
        component-contribution estimates), ``"displacement"`` (log-uniform concentrations and
        uniform displacements, reference fluxes; no Gibbs-energy data) or ``"auto"`` (default:
        ``"tfa"`` when estimates exist, i.e. files are given or the network comes from the
        shipped iCH360, else ``"displacement"``).
    concentration_bounds : (float, float)
        Physiological bounds of balanced metabolites (mM, both > 0); default (0.001, 10).
    metabolite_bounds : tuple of (str, float, float)
        Per-metabolite bounds overriding the default (id, low mM, high mM).
    fixed_concentrations : tuple of (str, float)
        Concentrations of boundary metabolites (mM); unspecified ones take
        ``default_fixed_concentration``. Default: glucose 20, oxygen 0.2 (air-saturated), CO2
        0.5, the M9 salts (NH4+ 18.7, phosphate 64, sulfate 2), anthranilate 0.05 (start of the
        batch), a tryptophan supplement of 0.1 (trpD9923 is auxotrophic) and formate 0.01.
    default_fixed_concentration : float
        Concentration of a boundary metabolite not listed (mM); default 1.
    displacement_range : (float, float)
        Range of |Delta_r G'/RT| = |ln(Gamma/Keq)| sampled uniformly per reaction (dimensionless,
        >= 0); the sign follows the reference flux. Default (0.1, 5).
    dg0_mean_path, dg0_cov_sqrt_path : str or None
        Component-contribution Delta_r G'0 (kJ/mol) mean vector and covariance square root
        (CSV files indexed by reaction id); ``None`` uses the estimates shipped with iCH360 for
        networks built from it.
    dg0_z_bound : float
        Delta_r G'0 is sampled within mean + Q z with |z_k| <= this bound (standard deviations).
    min_driving_force : float
        Smallest |ln(Gamma/Keq)| accepted in the thermodynamic (dG'0) case (dimensionless).
    temperature : float
        Temperature (K), for RT in the dG'0 case; default 310.15.
    physiological_fold : float
        In the "tfa" method the measured cofactor concentrations
        (:data:`~mpc_bio.nomad.steady_state.PHYSIOLOGICAL_CONCENTRATIONS`: ATP, ADP, AMP, NAD(P)(H),
        acetyl-CoA, CoA, glutamate, glutamine) bound their metabolites within this factor (> 1).
    flux_fold : float
        In the "tfa" method each state's |flux| lies within this factor of the reference flux
        (>= 1; 1 keeps the reference fluxes), with steady state, substrate uptake and product
        export at the reference.
    flux_growth_fraction : float
        In the "tfa" method each state's growth is at least this fraction of the reference growth.
    n_states : int
        Number of distinct reference steady states in the ensemble (models are spread evenly).
    hit_and_run_thinning : int
        Hit-and-run steps between kept samples in the "tfa" method.
    """

    method: str = "auto"
    concentration_bounds: tuple[float, float] = (0.001, 10.0)
    metabolite_bounds: tuple[tuple[str, float, float], ...] = ()
    fixed_concentrations: tuple[tuple[str, float], ...] = (
        ("glc__D_e", 20.0), ("o2_e", 0.2), ("co2_e", 0.5), ("nh4_e", 18.7), ("pi_e", 64.0), ("so4_e", 2.0),
        ("anth_e", 0.05), ("trp__L_e", 0.1), ("for_e", 0.01))
    default_fixed_concentration: float = 1.0
    displacement_range: tuple[float, float] = (0.1, 5.0)
    dg0_mean_path: str | None = None
    dg0_cov_sqrt_path: str | None = None
    dg0_z_bound: float = 1.96
    min_driving_force: float = 0.05
    temperature: float = 310.15
    physiological_fold: float = 3.0
    flux_fold: float = 2.0
    flux_growth_fraction: float = 0.8
    n_states: int = 20
    hit_and_run_thinning: int = 50

    def __post_init__(self) -> None:
        o = "SteadyStateSettings"
        object.__setattr__(self, "concentration_bounds",
                           _pair(o, "concentration_bounds", self.concentration_bounds, positive=True))
        for item in self.metabolite_bounds:
            if len(item) != 3:
                raise ValueError(
                    f"The 'metabolite_bounds' parameter of {o} must hold (id, low, high) triples. Got {item!r} instead."
                )
            _pair(o, f"metabolite_bounds[{item[0]}]", (item[1], item[2]), positive=True)
        for mid, val in self.fixed_concentrations:
            _number(o, f"fixed_concentrations[{mid}]", val, low=0.0)
        _number(o, "default_fixed_concentration", self.default_fixed_concentration, low=0.0)
        object.__setattr__(self, "displacement_range",
                           _pair(o, "displacement_range", self.displacement_range, low=0.0))
        if self.displacement_range[0] <= 0:
            raise ValueError(
                f"The 'displacement_range' parameter of {o} must have a positive lower end (a reaction at "
                f"equilibrium carries no flux). Got {self.displacement_range!r} instead."
            )
        if (self.dg0_mean_path is None) != (self.dg0_cov_sqrt_path is None):
            raise ValueError(f"{o}: give both 'dg0_mean_path' and 'dg0_cov_sqrt_path' or neither.")
        _number(o, "dg0_z_bound", self.dg0_z_bound, low=0.0)
        _number(o, "min_driving_force", self.min_driving_force, low=0.0)
        _number(o, "temperature", self.temperature, low=0.0)
        if self.method not in ("auto", "tfa", "displacement"):
            raise ValueError(f"The 'method' parameter of {o} must be 'auto', 'tfa' or 'displacement'. "
                             f"Got {self.method!r} instead.")
        _number(o, "physiological_fold", self.physiological_fold, low=1.0, strict_low=False)
        _number(o, "flux_fold", self.flux_fold, low=1.0, strict_low=False)
        _number(o, "flux_growth_fraction", self.flux_growth_fraction, low=0.0, high=1.0, strict_low=False)
        _integer(o, "n_states", self.n_states)
        _integer(o, "hit_and_run_thinning", self.hit_and_run_thinning)


@dataclass(frozen=True)
class SamplingSettings:
    """ORACLE-style sampling of kinetic parameters.

    Attributes
    ----------
    n_models : int
        Number of kinetic models (parameter sets) in the ensemble.
    saturation_bounds : (float, float)
        Saturations sigma = x / (x + Km) are drawn uniformly in this interval (0 < low <= high < 1);
        default (0.001, 0.999) as in ORACLE.
    cell_volume : float
        Cell volume per dry weight (L/gDW) converting fluxes to concentration rates; default 0.0023.
    seed : int
        Seed of every random draw of the ensemble (steady states and parameters).
    """

    n_models: int = 2000
    saturation_bounds: tuple[float, float] = (0.001, 0.999)
    cell_volume: float = 0.0023
    seed: int = 0

    def __post_init__(self) -> None:
        o = "SamplingSettings"
        _integer(o, "n_models", self.n_models)
        lo, hi = _pair(o, "saturation_bounds", self.saturation_bounds)
        if not (0.0 < lo <= hi < 1.0):
            raise ValueError(
                f"The 'saturation_bounds' parameter of {o} must satisfy 0 < low <= high < 1. "
                f"Got {self.saturation_bounds!r} instead."
            )
        object.__setattr__(self, "saturation_bounds", (lo, hi))
        _number(o, "cell_volume", self.cell_volume, low=0.0)
        _integer(o, "seed", self.seed, low=0)


@dataclass(frozen=True)
class ScreeningSettings:
    """The four screening stages of NOMAD (Methods, "Screening kinetic models").

    Attributes
    ----------
    doubling_time : float or None
        Cell doubling time (h); ``None`` uses ln 2 / (reference growth flux).
    time_constant_fraction : float
        Stage (ii): the dominant time constant -1/max Re(lambda) must be below this fraction of the
        doubling time (dimensionless); default 1/5.
    perturbation_fold : float
        Stage (iii): concentrations of independent metabolites are multiplied by k^u, u ~ U(-1, 1),
        with k this fold (ratio > 1); default 2.
    n_perturbations : int
        Stage (iii): number of random perturbations per model; default 3.
    return_tolerance : float
        Stage (iii): a model has returned when max |ln(x/x_ref)| <= this at the doubling time; default 0.01.
    vmax_cv : float
        Stage (iv): Vmax multiplied by max(N(1, cv), 0.01) per reaction (dimensionless); default 0.1.
    n_robustness : int
        Stage (iv): number of Vmax perturbations per model; default 10 (paper: 50).
    min_growth_fraction : float
        Stage (iv): biomass produced in the batch must be >= this fraction of the unperturbed
        model's (dimensionless); default 0.5.
    batch_duration : float or None
        Stage (iv): batch length (h); ``None`` uses one doubling time.
    initial_biomass : float
        Stage (iv): inoculum (gDW/L); default 0.05.
    max_nonlinear_models : int or None
        Stages (iii)-(iv) are applied to at most this many models (the first survivors of stage ii);
        ``None`` screens all of them.
    seed : int
        Seed of the random perturbations.
    """

    doubling_time: float | None = None
    time_constant_fraction: float = 0.2
    perturbation_fold: float = 2.0
    n_perturbations: int = 3
    return_tolerance: float = 0.01
    vmax_cv: float = 0.1
    n_robustness: int = 10
    min_growth_fraction: float = 0.5
    batch_duration: float | None = None
    initial_biomass: float = 0.05
    max_nonlinear_models: int | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        o = "ScreeningSettings"
        if self.doubling_time is not None:
            _number(o, "doubling_time", self.doubling_time, low=0.0)
        _number(o, "time_constant_fraction", self.time_constant_fraction, low=0.0)
        _number(o, "perturbation_fold", self.perturbation_fold, low=1.0)
        _integer(o, "n_perturbations", self.n_perturbations, low=0)
        _number(o, "return_tolerance", self.return_tolerance, low=0.0)
        _number(o, "vmax_cv", self.vmax_cv, low=0.0, strict_low=False)
        _integer(o, "n_robustness", self.n_robustness, low=0)
        _number(o, "min_growth_fraction", self.min_growth_fraction, low=0.0, high=1.0, strict_low=False)
        if self.batch_duration is not None:
            _number(o, "batch_duration", self.batch_duration, low=0.0)
        _number(o, "initial_biomass", self.initial_biomass, low=0.0)
        if self.max_nonlinear_models is not None:
            _integer(o, "max_nonlinear_models", self.max_nonlinear_models, low=0)
        _integer(o, "seed", self.seed, low=0)


@dataclass(frozen=True)
class ExecutorSettings:
    """Where batches of models are evaluated.

    Attributes
    ----------
    n_workers : int or None
        Local worker processes (1 = in this process); default ``None`` = every core
        (``os.cpu_count()``), resolved on creation.
    scheduler : str or None
        Dask distributed scheduler address (``"tcp://host:8786"``); when given, work goes to Dask.
    chunk_size : int
        Models per task; default 500.
    progress : bool
        Show tqdm progress bars.
    """

    n_workers: int | None = None
    scheduler: str | None = None
    chunk_size: int = 500
    progress: bool = True

    def __post_init__(self) -> None:
        o = "ExecutorSettings"
        if self.n_workers is None:
            import os

            object.__setattr__(self, "n_workers", max(1, os.cpu_count() or 1))
        _integer(o, "n_workers", self.n_workers)
        _integer(o, "chunk_size", self.chunk_size)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise ValueError(f"The 'scheduler' parameter of {o} must be an address string. Got {self.scheduler!r}.")


@dataclass(frozen=True)
class EnsembleStudySettings:
    """All settings of ``mpc-bio nomad ensemble`` (the ``[nomad.*]`` tables of a scenario TOML)."""

    network: NetworkSettings = field(default_factory=NetworkSettings)
    steady_state: SteadyStateSettings = field(default_factory=SteadyStateSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    screening: ScreeningSettings = field(default_factory=ScreeningSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    output_dir: str = "runs/nomad"

    def __post_init__(self) -> None:
        for name, cls in (("network", NetworkSettings), ("steady_state", SteadyStateSettings),
                          ("sampling", SamplingSettings), ("screening", ScreeningSettings),
                          ("executor", ExecutorSettings)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"The '{name}' parameter of EnsembleStudySettings must be a {cls.__name__}. "
                    f"Got {type(getattr(self, name)).__name__} instead."
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "EnsembleStudySettings":
        """Build from a mapping with keys network, steady_state, sampling, screening, executor, output_dir."""
        data = dict(data)
        known = {"network", "steady_state", "sampling", "screening", "executor", "output_dir"}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"Unknown key(s) {extra} in the [nomad] settings; expected a subset of {sorted(known)}.")
        return cls(
            network=_from_mapping(NetworkSettings, data.get("network")),
            steady_state=_from_mapping(SteadyStateSettings, data.get("steady_state")),
            sampling=_from_mapping(SamplingSettings, data.get("sampling")),
            screening=_from_mapping(ScreeningSettings, data.get("screening")),
            executor=_from_mapping(ExecutorSettings, data.get("executor")),
            output_dir=str(data.get("output_dir", "runs/nomad")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dictionary (json/TOML friendly; None values dropped)."""

        def clean(d):
            if isinstance(d, dict):
                return {k: clean(v) for k, v in d.items() if v is not None}
            if isinstance(d, (list, tuple)):
                return [clean(v) for v in d]
            return d

        return clean(asdict(self))


def load_study_settings(path: str | Path) -> EnsembleStudySettings:
    """Read the ``[nomad]`` table of a scenario TOML file.

    Tables other than ``[nomad]`` (for instance the design stage's) are ignored here; inside
    ``[nomad]`` the keys ``design``/``nra``/``ranking``/``verification``/``sensitivity`` belong to the
    design stage and are skipped, every other unknown key is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The scenario file {str(path)!r} does not exist.")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    if "nomad" not in data:
        raise ValueError(f"The scenario file {str(path)!r} has no [nomad] table.")
    nomad = {k: v for k, v in data["nomad"].items()
             if k not in {"design", "nra", "ranking", "verification", "sensitivity"}}
    return EnsembleStudySettings.from_mapping(nomad)
