"""Settings of the NOMAD ensemble stage: network, reference state, sampling, screening, MCA.

One frozen settings class per step (:class:`mpc_bio.settings.Settings`: each field declares its
unit, range and doc). Units: concentrations in mmol/L of cell volume, fluxes in mmol/gDW/h, time
in hours, Gibbs energies in kJ/mol, fold changes as plain ratios, log quantities as natural
logarithms.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.nomad.reduction import CORE_SUBSYSTEMS, PAPER_TARGETS
from mpc_bio.nomad.regulation import REGULATION_KINDS, SHIKIMATE_REGULATIONS
from mpc_bio.settings import FOLD, FRACTION, POSITIVE, Settings, setting

__all__ = [
    "DEFAULT_MODEL",
    "SMALL_MODEL",
    "NomadSettingsError",
    "NomadSettings",
    "NetworkSettings",
    "SteadyStateSettings",
    "SamplingSettings",
    "ScreeningSettings",
    "ExecutorSettings",
    "EnsembleStudySettings",
    "load_study_settings",
    "read_nomad_table",
    "data_product_yield",
]


#: The default network: NOMAD's E. coli W3110 trpD9923 case reduced from the shipped iCH360.
DEFAULT_MODEL = "ich360_trpD9923"
#: The small network for fast runs: e_coli_core + the shikimate branch towards anthranilate.
SMALL_MODEL = "core_shikimate"

#: Tables of ``[nomad]`` that belong to the design stage (:mod:`mpc_bio.nomad.nra_settings`).
DESIGN_TABLES = ("design", "nra", "ranking", "verification", "sensitivity")


class NomadSettingsError(MpcBioError):
    """A NOMAD setting (ensemble or design stage) has the wrong type or lies outside its range."""


class NomadSettings(Settings):
    """Base of the NOMAD settings classes: a bad value raises :class:`NomadSettingsError`."""

    error: ClassVar[type] = NomadSettingsError


def _ordered_pair(self: Settings, name: str) -> None:
    low, high = getattr(self, name)
    if low > high:
        raise self.invalid(name, "a pair (low, high) with low <= high", getattr(self, name))


@dataclass(frozen=True)
class NetworkSettings(NomadSettings):
    """How the kinetic network is cut out of a cobra model and its reference fluxes computed."""

    model: str = setting(
        DEFAULT_MODEL,
        doc=(
            'Source model of the network. "ich360_trpD9923" (default: NOMAD\'s anthranilate network from the iCH360 '
            "model shipped with mpc_bio: ANPRT removed, core subsystems, shikimate pathway and chorismate branches, "
            "glutamine synthesis, transports between cytosol and periplasm, one lumped growth reaction), "
            '"core_shikimate" (small and fast: COBRApy\'s e_coli_core + the shikimate branch of iJO1366 towards '
            'anthranilate; "anthranilate" is the same), "ich360" (every iCH360 reaction carrying flux, growth '
            "unlumped), a bundled model name or a model file path."
        ),
    )
    reactions: tuple[str, ...] | None = setting(
        None,
        min_items=1,
        doc=(
            "Reactions of the kinetic network; default every non-exchange reaction carrying flux in the reference "
            "pFBA (after the reduction, when there is one). An explicit list must contain only reactions with flux."
        ),
    )
    product_reaction: str = setting("ANTHt", doc="Reaction whose flux is the product formation (the anthranilate export).")
    substrate_reaction: str | None = setting(
        None,
        doc=(
            "Substrate uptake reaction inside the network; default the reaction consuming the extracellular "
            "metabolite of the first uptake_bounds exchange (GLCpts in e_coli_core, GLCtex_copy1 in iCH360)."
        ),
    )
    growth_reaction: str | None = setting(None, doc="Growth reaction of the source model; default the model objective.")
    knockouts: tuple[str, ...] = setting(("ANPRT",), doc="Reactions removed before anything else (ANPRT: the trpD9923 strain).")
    uptake_bounds: tuple[tuple[str, float], ...] = setting(
        (("EX_glc__D_e", 10.0),),
        unit="mmol/gDW/h",
        low=0.0,
        doc=("Exchange reactions fixed as uptakes, {exchange id: rate} (positive = uptake)."),
    )
    growth_fraction: float = setting(0.9, **FRACTION, strict=True, doc=("Reference growth as a fraction of the maximum growth."))
    product_fraction: float = setting(
        0.3, **FRACTION, strict=True, doc=("Product flux fixed at this fraction of its maximum at the reference growth.")
    )
    reference_product: str = setting(
        "fraction",
        choices=("fraction", "yield"),
        unit="-",
        doc=(
            'How the reference product flux is set. "fraction": product_fraction of its maximum at growth_fraction of '
            'the maximal growth. "yield": product_yield (mol product per mol substrate) times the substrate uptake of '
            "the first uptake_bounds exchange, with the growth maximised at that product flux (growth_fraction and "
            "product_fraction unused); in a scenario the yield defaults to the reference strain's in the fermentation "
            "data ([nomad.screening] fermentation_data: final product / glucose consumed)."
        ),
    )
    product_yield: float | None = setting(
        None,
        unit="mol/mol",
        **POSITIVE,
        doc=(
            'Reference product yield on the substrate for reference_product = "yield". Omitted in a scenario: the '
            "fermentation data's (final product titer / (glucose at inoculation - final glucose); the glucose at "
            "inoculation defaults to the medium's fixed concentration of the substrate, the final glucose to 0, "
            "as the screen requires the glucose used up)."
        ),
    )
    flux_tolerance: float = setting(1e-7, unit="mmol/gDW/h", **POSITIVE, doc="Fluxes with |v| below this count as zero.")
    reduce: bool | None = setting(
        None,
        doc=(
            "Keep only core_subsystems, transports and keep_reactions, lumping every other reaction with the biomass "
            "reaction into one growth reaction (mpc_bio.nomad.reduction); default: when the source model is resolved "
            'from model = "ich360_trpD9923" (not for a cobra model handed to build_network).'
        ),
    )
    core_subsystems: tuple[str, ...] = setting(CORE_SUBSYSTEMS, doc="Subsystems (iJO1366 names) kept by the reduction.")
    keep_reactions: tuple[str, ...] = setting(
        PAPER_TARGETS,
        doc=(
            "Reactions kept by the reduction even where the reference pFBA gives them no flux (NOMAD's design "
            "targets). Each then carries at least min_target_flux in the direction the reference constraints allow "
            "(forward, as written in the model, when both are)."
        ),
    )
    min_target_flux: float = setting(
        0.05, unit="mmol/gDW/h", **POSITIVE, doc=("Smallest |flux| given to a keep_reactions reaction that pFBA leaves at zero.")
    )
    min_core_flux: float = setting(
        0.01,
        unit="mmol/gDW/h",
        low=0.0,
        doc=(
            "The reduction lumps core and transport reactions carrying less than this into growth (0.01 is 0.1 % of "
            "the glucose uptake: trace pathways such as formate export would otherwise add pools turning over in "
            "hours)."
        ),
    )
    fixed_compartments: tuple[str, ...] = setting(
        ("e",), doc=("Compartments whose metabolites are boundary species with fixed concentrations.")
    )
    kinetic_exclusions: tuple[str, ...] = setting(
        ("h", "h2o"),
        doc=(
            "Metabolite base ids (without compartment) left out of rate laws and mass-action ratios, as in "
            "transformed Gibbs energies (protons at fixed pH, water at unit activity)."
        ),
    )
    regulations: tuple[tuple[str, str, str], ...] = setting(
        SHIKIMATE_REGULATIONS,
        doc=(
            "Allosteric regulation: [[reaction, metabolite, kind], ...], kind activation, noncompetitive (or "
            "inhibition), competitive, uncompetitive or mixed (mpc_bio.nomad.regulation; constants in mM, sampled "
            "like Km). Default: the end-product feedback of the shikimate pathway (DDPA by phenylalanine and "
            "tyrosine, ANS by tryptophan, the chorismate mutase branches by their end products)."
        ),
    )
    strict_regulations: bool = setting(
        False,
        doc=(
            "A regulation whose reaction or metabolite is not in the network is an error (true) or skipped and "
            "listed in KineticNetwork.unapplied_regulations (false)."
        ),
    )

    def _check(self) -> None:
        for item in self.regulations:
            if item[2] not in REGULATION_KINDS:
                raise self.invalid("regulations", f"(reaction, metabolite, kind) triples with kind one of {list(REGULATION_KINDS)}", item)


@dataclass(frozen=True)
class SteadyStateSettings(NomadSettings):
    """Sampling of reference fluxes, concentrations and reaction Gibbs energies (:mod:`mpc_bio.nomad.steady_state`)."""

    method: str = setting(
        "auto",
        choices=("auto", "tfa", "displacement"),
        unit="-",
        doc=(
            'How reference states are sampled. "tfa": concentrations, Delta_r G\'0 and fluxes sampled jointly, '
            'consistent with component-contribution estimates; "displacement": log-uniform concentrations and '
            'uniform displacements, reference fluxes, no Gibbs-energy data; "auto": "tfa" when estimates exist '
            '(files given, or the network comes from the shipped iCH360), else "displacement".'
        ),
    )
    concentration_bounds: tuple[float, float] = setting(
        (0.001, 10.0),
        unit="mmol/L",
        **POSITIVE,
        expected="a pair (low, high) of positive numbers (mmol/L)",
        doc="Physiological bounds of balanced metabolites.",
    )
    metabolite_bounds: tuple[tuple[str, float, float], ...] = setting(
        (),
        unit="mmol/L",
        **POSITIVE,
        expected="(id, low, high) triples with 0 < low <= high (mmol/L)",
        doc="Per-metabolite bounds overriding concentration_bounds: [[id, low, high], ...].",
    )
    fixed_concentrations: tuple[tuple[str, float], ...] = setting(
        (
            ("glc__D_e", 20.0),
            ("o2_e", 0.2),
            ("co2_e", 0.5),
            ("nh4_e", 18.7),
            ("pi_e", 64.0),
            ("so4_e", 2.0),
            ("anth_e", 0.05),
            ("trp__L_e", 0.1),
            ("for_e", 0.01),
        ),
        unit="mmol/L",
        **POSITIVE,
        doc=(
            "Concentrations of boundary metabolites, {id: value}; unlisted ones take "
            "default_fixed_concentration. Default: glucose 20, oxygen 0.2 (air-saturated), CO2 0.5, the M9 salts "
            "(NH4+ 18.7, phosphate 64, sulfate 2), anthranilate 0.05 (start of the batch), a tryptophan "
            "supplement of 0.1 (trpD9923 is auxotrophic) and formate 0.01."
        ),
    )
    default_fixed_concentration: float = setting(
        1.0, unit="mmol/L", **POSITIVE, doc=("Concentration of a boundary metabolite not listed in fixed_concentrations.")
    )
    medium_exchange_compartments: tuple[str, ...] = setting(
        ("p",),
        doc=(
            "Compartments in direct exchange with the medium through porins (the periplasm). A metabolite there whose "
            "base id is a boundary (medium) species is bounded by medium_exchange_fold around the medium's "
            "concentration instead of concentration_bounds (metabolite_bounds still override)."
        ),
    )
    medium_exchange_fold: float | None = setting(
        1.25,
        unit="-",
        low=1.0,
        doc=(
            "A medium_exchange_compartments metabolite lies within [c/fold, c*fold] of its medium concentration c "
            "(default 1.25: porins near equilibrium, so uptake through a mass-action porin does not stop while the "
            "medium still holds substrate); omit (None in Python) to use concentration_bounds."
        ),
    )
    displacement_range: tuple[float, float] = setting(
        (0.1, 5.0),
        unit="-",
        **POSITIVE,
        expected="a pair (low, high) of positive numbers (a reaction at equilibrium carries no flux)",
        doc=("Range of |Delta_r G'/RT| = |ln(Gamma/Keq)| sampled uniformly per reaction; the sign follows the reference flux."),
    )
    dg0_mean_path: str | None = setting(
        None,
        is_path=True,
        doc=(
            "Component-contribution Delta_r G'0 mean vector (kJ/mol; CSV indexed by reaction id); default the "
            "estimates shipped with iCH360 for networks built from it."
        ),
    )
    dg0_cov_sqrt_path: str | None = setting(
        None, is_path=True, doc=("Square root of the Delta_r G'0 covariance (CSV indexed by reaction id); give it with dg0_mean_path.")
    )
    dg0_z_bound: float = setting(
        1.96, unit="-", **POSITIVE, doc=("Delta_r G'0 is sampled within mean + Q z with |z_k| <= this bound (standard deviations).")
    )
    min_driving_force: float = setting(
        0.05, unit="-", **POSITIVE, doc=("Smallest |ln(Gamma/Keq)| accepted in the thermodynamic (dG'0) case.")
    )
    temperature: float = setting(310.15, unit="K", **POSITIVE, doc="Temperature, for RT in the dG'0 case.")
    physiological_fold: float = setting(
        3.0,
        unit="-",
        low=1.0,
        doc=(
            'In the "tfa" method the measured cofactor concentrations (ATP, ADP, AMP, NAD(P)(H), acetyl-CoA, CoA, '
            "glutamate, glutamine) bound their metabolites within this factor."
        ),
    )
    flux_fold: float = setting(
        2.0,
        unit="-",
        low=1.0,
        doc=(
            'In the "tfa" method each state\'s |flux| lies within this factor of the reference flux (1 keeps the '
            "reference fluxes), with steady state, substrate uptake and product export at the reference."
        ),
    )
    flux_growth_fraction: float = setting(
        0.8,
        **FRACTION,
        doc=('In the "tfa" method each state\'s growth is at least this fraction of the reference growth.'),
    )
    n_states: int = setting(20, low=1, doc="Number of distinct reference steady states (models are spread evenly over them).")
    hit_and_run_thinning: int = setting(50, low=1, doc='Hit-and-run steps between kept samples in the "tfa" method.')

    def _check(self) -> None:
        _ordered_pair(self, "concentration_bounds")
        _ordered_pair(self, "displacement_range")
        for item in self.metabolite_bounds:
            if item[1] > item[2]:
                raise self.invalid("metabolite_bounds", "(id, low, high) triples with 0 < low <= high (mmol/L)", item)
        if (self.dg0_mean_path is None) != (self.dg0_cov_sqrt_path is None):
            raise self.invalid("dg0_cov_sqrt_path", "given together with dg0_mean_path (both or neither)", self.dg0_cov_sqrt_path)


@dataclass(frozen=True)
class SamplingSettings(NomadSettings):
    """ORACLE-style sampling of kinetic parameters."""

    n_models: int = setting(2000, low=1, doc="Number of kinetic models (parameter sets) in the ensemble.")
    saturation_bounds: tuple[float, float] = setting(
        (0.001, 0.999),
        **FRACTION,
        strict=True,
        high_strict=True,
        doc=("Saturations sigma = x / (x + Km) are drawn uniformly in this interval (0 < low <= high < 1; ORACLE's default)."),
    )
    km_ranges: tuple[tuple[str, str, float, float], ...] = setting(
        (),
        unit="mmol/L",
        **POSITIVE,
        expected="(reaction, metabolite, low, high) quadruples with 0 < low <= high (mmol/L)",
        doc=(
            "Michaelis constants known from the literature: [[reaction, metabolite, low, high], ...]. The Km of that "
            "reaction for that substrate or product is drawn log-uniformly in [low, high] per model (its saturation "
            "follows from the state's concentration; Vmax keeps the reference flux) instead of from saturation_bounds."
        ),
    )
    cell_volume: float = setting(
        0.0023, unit="L/gDW", **POSITIVE, doc=("Cell volume per dry weight, converting fluxes to concentration rates.")
    )
    seed: int = setting(0, low=0, doc="Seed of every random draw of the ensemble (steady states and parameters).")

    def _check(self) -> None:
        _ordered_pair(self, "saturation_bounds")
        for item in self.km_ranges:
            if item[2] > item[3]:
                raise self.invalid("km_ranges", "(reaction, metabolite, low, high) quadruples with 0 < low <= high (mmol/L)", item)


@dataclass(frozen=True)
class ScreeningSettings(NomadSettings):
    """The four screening stages of NOMAD (Methods, "Screening kinetic models").

    (i) linear stability, (ii) time constants, (iii) the reference strain's batch fermentation
    data (``nonlinear_check = "batch_data"``, the paper's case) or the return from random
    concentration perturbations (``"perturbation"``, for when there are no data), (iv) robustness
    of growth to random Vmax perturbations.
    """

    renamed: ClassVar[dict[str, str]] = {"batch_duration": "batch_time", "initial_biomass": "biomass0"}

    nonlinear_check: str = setting(
        "perturbation",
        choices=("batch_data", "perturbation"),
        unit="-",
        doc=(
            'Stage (iii). "batch_data" (the paper\'s screen): each model, inoculated as in fermentation_data, grows '
            "in batch and must reproduce the reference strain's final biomass (within growth_tolerance) and product "
            "titer (within titer_tolerance) with its glucose used up within max_fermentation_time; robustness (iv) "
            'then runs the same batch. "perturbation" (default, for networks not calibrated to fermentation data): '
            "return from n_perturbations random k-fold concentration perturbations within one doubling time."
        ),
    )
    fermentation_data: str | None = setting(
        None,
        is_path=True,
        doc=(
            "CSV of batch fermentation data (strain, quantity, time_h, value, unit, source; see "
            "mpc_bio.nomad.fermentation_data; a relative path is read relative to the scenario file); default the file shipped with mpc_bio holding the values the NOMAD "
            "paper states for E. coli W3110 trpD9923 and its aroG^fbr / aroG^fbr+tktA strains."
        ),
    )
    reference_strain: str = setting("trpD9923", doc="Strain of the fermentation data that the ensemble models (stages iii and iv).")
    growth_tolerance: float = setting(
        0.05, unit="-", **POSITIVE, doc="Stage (iii): |final biomass / data - 1| must be at most this (paper: 5 %)."
    )
    titer_tolerance: float = setting(
        0.10, unit="-", **POSITIVE, doc="Stage (iii): |final product titer / data - 1| must be at most this (paper: 10 %)."
    )
    max_fermentation_time: float = setting(
        20.0,
        unit="h",
        **POSITIVE,
        doc=(
            "Stage (iii): the glucose must be used up (below glucose_exhausted_fraction of the initial) before this "
            "time (paper: 20 h); the batch is simulated this long and its final values are read at the end."
        ),
    )
    glucose_exhausted_fraction: float = setting(
        0.01,
        **FRACTION,
        strict=True,
        doc="Stage (iii): the fermentation ends when glucose falls below this fraction of the initial.",
    )
    product_molar_mass: float = setting(
        137.14, unit="g/mol", **POSITIVE, doc="Molar mass of the product (anthranilate 137.14), converting titers in g/L to mM."
    )
    batch_points: int = setting(81, low=3, doc="Stage (iii): output times of the batch simulation (the exhaustion time is interpolated).")

    doubling_time: float | None = setting(None, unit="h", **POSITIVE, doc=("Cell doubling time; default ln 2 / (reference growth flux)."))
    time_constant_fraction: float = setting(
        0.2,
        unit="-",
        **POSITIVE,
        doc=("Stage (ii): the dominant time constant -1/max Re(lambda) must be below this fraction of the doubling time."),
    )
    perturbation_fold: float = setting(
        2.0,
        **FOLD,
        doc=("Stage (iii): concentrations of independent metabolites are multiplied by k^u, u ~ U(-1, 1), with k this fold."),
    )
    n_perturbations: int = setting(3, low=0, doc="Stage (iii): random perturbations per model.")
    return_tolerance: float = setting(
        0.01, unit="-", **POSITIVE, doc=("Stage (iii): a model has returned when max |ln(x/x_ref)| <= this at the doubling time.")
    )
    vmax_cv: float = setting(0.1, unit="-", low=0.0, doc="Stage (iv): Vmax multiplied by max(N(1, cv), 0.01) per reaction.")
    n_robustness: int = setting(50, low=0, doc="Stage (iv): Vmax perturbations per model (paper: 50).")
    min_growth_fraction: float = setting(
        0.5,
        **FRACTION,
        doc=(
            "Stage (iv): biomass produced in the batch must be >= this fraction of the reference strain's: the final "
            "biomass of the fermentation data minus the inoculum when the data give one (paper), else the "
            "unperturbed model's."
        ),
    )
    batch_time: float | None = setting(
        None,
        unit="h",
        **POSITIVE,
        doc=(
            'Stage (iv): batch length; default max_fermentation_time with nonlinear_check = "batch_data" (the '
            "reference fermentation), else one doubling time."
        ),
    )
    biomass0: float = setting(
        0.05, unit="gDW/L", **POSITIVE, doc="Stages (iii)-(iv): inoculum, unless the fermentation data give the biomass at time 0."
    )
    max_nonlinear_models: int | None = setting(
        None, low=0, doc=("Stages (iii)-(iv) are applied to at most this many models (the first survivors of stage ii); default all.")
    )
    seed: int = setting(1, low=0, doc="Seed of the random perturbations.")
    compiled: bool = setting(
        False,
        doc=(
            "Stages (iii)-(iv): compile the batch reactor's right-hand side and Jacobian to C (CasADi JIT, needs a C "
            "compiler; a few seconds once per process and output grid) for about twice the integration speed."
        ),
    )


@dataclass(frozen=True)
class ExecutorSettings(NomadSettings):
    """Where batches of models are evaluated."""

    n_workers: int | None = setting(
        None, low=1, doc=("Local worker processes (1 = in this process); default every core (os.cpu_count()), resolved on creation.")
    )
    scheduler: str | None = setting(None, doc=('Dask distributed scheduler address ("tcp://host:8786"); when given, work goes to Dask.'))
    chunk_size: int = setting(500, low=1, doc="Models per task.")
    progress: bool = setting(True, doc="Show progress bars.")

    def _check(self) -> None:
        if self.n_workers is None:
            self._set("n_workers", max(1, os.cpu_count() or 1))


@dataclass(frozen=True)
class EnsembleStudySettings(NomadSettings):
    """All settings of ``mpc-bio nomad ensemble`` (the ``[nomad.*]`` tables of a scenario TOML)."""

    output_dir: str = setting(
        "runs/nomad",
        doc=("The ensemble stage's output (mpc-bio nomad ensemble), reused by co-design when its recorded settings equal these."),
    )
    network: NetworkSettings = setting(factory=NetworkSettings, doc="[nomad.network] kinetic network cut from the cobra model.")
    steady_state: SteadyStateSettings = setting(
        factory=SteadyStateSettings, doc=("[nomad.steady_state] reference concentrations, fluxes and displacements.")
    )
    sampling: SamplingSettings = setting(factory=SamplingSettings, doc="[nomad.sampling] ORACLE parameter sampling.")
    screening: ScreeningSettings = setting(factory=ScreeningSettings, doc="[nomad.screening] the four NOMAD screening stages.")
    executor: ExecutorSettings = setting(factory=ExecutorSettings, doc="[nomad.executor] local processes or Dask.")

    def _check(self) -> None:
        net = self.network
        data = self.screening.fermentation_data
        # a data file that does not exist is left to the stage that reads it (its error names the path)
        if net.reference_product == "yield" and net.product_yield is None and (data is None or Path(data).is_file()):
            self._set("network", replace(net, product_yield=data_product_yield(self)))


def data_product_yield(settings: EnsembleStudySettings) -> float:
    """The reference strain's product yield on glucose in the fermentation data (mol/mol).

    ``(final product - product at inoculation) / (glucose at inoculation - final glucose)``, each
    read from ``settings.screening.fermentation_data`` for ``reference_strain`` (titers in g/L
    converted with ``product_molar_mass``); absent values default to: product at inoculation 0,
    glucose at inoculation the medium's (``steady_state.fixed_concentrations`` of the substrate
    exchange's metabolite, ``EX_glc__D_e`` -> ``glc__D_e``), final glucose 0 (stage iii requires it used up).

    Raises
    ------
    NomadSettingsError
        If the data have no final product for the reference strain or no glucose is consumed.
    """
    from mpc_bio.nomad.fermentation_data import load_fermentation_data

    scr, ss = settings.screening, settings.steady_state
    data = load_fermentation_data(scr.fermentation_data)
    s, mw = scr.reference_strain, scr.product_molar_mass
    final_p = data.value(data.final(s, "product"), mw)
    if final_p is None:
        raise NomadSettingsError(
            f"network.reference_product = 'yield' without network.product_yield needs the final product of strain {s!r} "
            f"in the fermentation data {data.path}; add a product row or give network.product_yield."
        )
    p0 = data.value(data.initial(s, "product"), mw) or 0.0
    g0 = data.value(data.initial(s, "glucose"))
    if g0 is None:
        ex = settings.network.uptake_bounds[0][0] if settings.network.uptake_bounds else ""
        met = ex[3:] if ex.startswith("EX_") else ex
        g0 = dict(ss.fixed_concentrations).get(met, ss.default_fixed_concentration)
    gf = data.final(s, "glucose")
    gf = data.value(gf) if gf is not None and gf.time != 0 else 0.0
    if not g0 - gf > 0 or not final_p - p0 > 0:
        raise NomadSettingsError(
            f"The fermentation data {data.path} give strain {s!r} a product gain {final_p - p0:g} mM from a glucose use "
            f"{g0 - gf:g} mM; network.reference_product = 'yield' needs both positive (or give network.product_yield)."
        )
    return float((final_p - p0) / (g0 - gf))


def read_nomad_table(path: str | Path) -> dict | None:
    """The ``[nomad]`` table of the scenario TOML file ``path`` as parsed (None when it has none);
    the one reader of the NOMAD stages' scenario files.

    Raises
    ------
    FileNotFoundError
        No such file.
    NomadSettingsError
        Not valid TOML, or ``nomad`` is not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The scenario file {str(path)!r} does not exist.")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise NomadSettingsError(f"The scenario file {str(path)!r} is not valid TOML: {exc}.") from None
    nomad = data.get("nomad")
    if nomad is not None and not isinstance(nomad, dict):
        raise NomadSettingsError(f"[nomad] in {str(path)!r} must be a table. Got {type(nomad).__name__} {nomad!r}.")
    return nomad


def load_study_settings(path: str | Path) -> EnsembleStudySettings:
    """Read the ``[nomad]`` table of a scenario TOML file.

    Tables other than ``[nomad]`` (for instance the co-design stage's) are ignored here; inside
    ``[nomad]`` the design stage's tables (:data:`DESIGN_TABLES`) are skipped, every other
    unknown key is an error. Relative file paths (``fermentation_data``, ``dg0_mean_path``, ...)
    are taken relative to the scenario file, as ``mpc-bio validate`` and the scenario runner take
    them (:func:`mpc_bio.scenarios.schema.resolve_path`).
    """
    from mpc_bio.scenarios.kinds import nomad_table
    from mpc_bio.scenarios.schema import resolve_table_paths

    table = read_nomad_table(path)
    if table is None:
        raise NomadSettingsError(f"The scenario file {str(path)!r} has no [nomad] table.")
    nomad = {k: v for k, v in table.items() if k not in DESIGN_TABLES}
    resolve_table_paths(Path(path), nomad, nomad_table().fields)
    return EnsembleStudySettings.from_dict(nomad, "[nomad]")
