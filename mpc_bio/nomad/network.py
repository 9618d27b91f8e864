"""Kinetic networks cut out of cobra models, with their reference fluxes from pFBA.

The default network (``model = "ich360_trpD9923"``) is NOMAD's anthranilate case built from the
iCH360 model shipped with mpc_bio: an anthranilate export and a tryptophan supplement added,
ANPRT removed (the trpD9923 strain), then reduced to the core subsystems, the aromatic amino
acid pathways, glutamine synthesis and the transports between cytosol and periplasm, with every
other reaction lumped into one growth reaction (:mod:`mpc_bio.nomad.reduction`); NOMAD's design
targets that pFBA leaves without flux (PPS, ICL, ME2, ...) get a small flux so they stay in the
network. Allosteric end-product feedback of the shikimate pathway is on by default
(:mod:`mpc_bio.nomad.regulation`).

The small network (``model = "core_shikimate"``) is built from COBRApy's bundled data only: the
e_coli_core reactions, the shikimate branch of iJO1366 (DDPA, DHQS, DHQTi, SHK3Dr, SHKK, PSCVT,
CHORS, ANS), the anthranilate export (``ANTHt`` and ``EX_anth_e``), no ANPRT and e_coli_core's
growth reaction; it is the fast option for tests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import cobra
import numpy as np

from mpc_bio.errors import MpcBioError
from mpc_bio.metabolism.models import find_ich360, load_model
from mpc_bio.nomad.regulation import KIND_ROLES
from mpc_bio.nomad.settings import DEFAULT_MODEL, SMALL_MODEL, NetworkSettings

__all__ = [
    "SHIKIMATE_BRANCH",
    "KineticNetwork",
    "NetworkError",
    "anthranilate_model",
    "ich360_anthranilate_model",
    "build_network",
    "product_flux_from_yield",
    "reference_fluxes",
    "resolve_substrate",
]

#: iJO1366 reaction ids of the shikimate branch towards anthranilate.
SHIKIMATE_BRANCH: tuple[str, ...] = ("DDPA", "DHQS", "DHQTi", "SHK3Dr", "SHKK", "PSCVT", "CHORS", "ANS")

RATE_LAWS = ("convenience", "mass_action", "growth")


class NetworkError(MpcBioError):
    """The kinetic network cannot be built from the given model and settings."""


@dataclass(frozen=True, eq=False)
class KineticNetwork:
    """Stoichiometry, rate-law structure and reference fluxes of a kinetic network.

    Attributes
    ----------
    reaction_ids : tuple of str
        Reactions (one enzyme each), in column order.
    metabolite_ids : tuple of str
        Balanced (dynamic) metabolites, in row order of ``stoichiometry``.
    fixed_ids : tuple of str
        Boundary metabolites held at fixed concentrations (extracellular by default).
    stoichiometry : ndarray, shape (n_met, n_rxn)
        Stoichiometric matrix of the balanced metabolites.
    fixed_stoichiometry : ndarray, shape (n_fixed, n_rxn)
        Stoichiometry of the boundary metabolites.
    rate_laws : tuple of str
        ``"convenience"`` (reversible convenience kinetics), ``"mass_action"`` (transport) or
        ``"growth"`` (irreversible saturating lumped growth) per reaction.
    slot_reaction, slot_species, slot_role : ndarray of int
        Saturation slots (one Km each): the reaction, the species index in
        ``metabolite_ids + fixed_ids`` and the role (+1 substrate, -1 product, +2 allosteric
        activator, -2 allosteric inhibitor; the constant is Km, Ka or Ki in mM).
    fluxes : ndarray, shape (n_rxn,)
        Reference fluxes (mmol/gDW/h), all nonzero.
    product_reaction, substrate_reaction, growth_reaction : str
        Reaction ids of product formation, substrate uptake and lumped growth.
    model_id : str
        Id of the source cobra model.
    dropped_reactions : tuple of str
        Non-exchange reactions of the model left out (no reference flux, not selected or lumped).
    lumped_reactions : tuple of str
        Reactions of the source model folded into the lumped growth reaction (reduced networks).
    unapplied_regulations : tuple of (str, str, str)
        Regulations of the settings skipped because their reaction or metabolite is not in the network.
    excluded_ids : tuple of str
        Species left out of the rate laws (``kinetic_exclusions``: protons, water) in the balanced
        compartments.
    excluded_stoichiometry : ndarray, shape (n_excluded, n_rxn)
        Their stoichiometry; rows balanced at the reference (cytosolic protons) constrain flux sampling.
    flux_bounds : ndarray or None, shape (n_rxn, 2)
        Lower and upper flux bounds of each reaction in the source model (mmol/gDW/h; the
        knock-outs and uptakes of the reference applied); ``None`` when unknown.
    """

    reaction_ids: tuple[str, ...]
    metabolite_ids: tuple[str, ...]
    fixed_ids: tuple[str, ...]
    stoichiometry: np.ndarray
    fixed_stoichiometry: np.ndarray
    rate_laws: tuple[str, ...]
    slot_reaction: np.ndarray
    slot_species: np.ndarray
    slot_role: np.ndarray
    fluxes: np.ndarray
    product_reaction: str
    substrate_reaction: str
    growth_reaction: str
    model_id: str = ""
    dropped_reactions: tuple[str, ...] = ()
    lumped_reactions: tuple[str, ...] = ()
    unapplied_regulations: tuple[tuple[str, str, str], ...] = ()
    excluded_ids: tuple[str, ...] = ()
    excluded_stoichiometry: np.ndarray | None = None
    flux_bounds: np.ndarray | None = None

    @property
    def n_reactions(self) -> int:
        return len(self.reaction_ids)

    @property
    def n_metabolites(self) -> int:
        return len(self.metabolite_ids)

    @property
    def n_fixed(self) -> int:
        return len(self.fixed_ids)

    @property
    def n_slots(self) -> int:
        return int(self.slot_reaction.size)

    @property
    def species_ids(self) -> tuple[str, ...]:
        """Balanced then fixed metabolites: the index space of ``slot_species``."""
        return self.metabolite_ids + self.fixed_ids

    def reaction_index(self, rid: str) -> int:
        try:
            return self.reaction_ids.index(rid)
        except ValueError:
            raise KeyError(f"Reaction {rid!r} is not in the kinetic network.") from None

    def to_dict(self) -> dict:
        """JSON-serialisable description (arrays as nested lists)."""
        return {
            "reaction_ids": list(self.reaction_ids),
            "metabolite_ids": list(self.metabolite_ids),
            "fixed_ids": list(self.fixed_ids),
            "stoichiometry": self.stoichiometry.tolist(),
            "fixed_stoichiometry": self.fixed_stoichiometry.tolist(),
            "rate_laws": list(self.rate_laws),
            "slot_reaction": self.slot_reaction.tolist(),
            "slot_species": self.slot_species.tolist(),
            "slot_role": self.slot_role.tolist(),
            "fluxes": self.fluxes.tolist(),
            "product_reaction": self.product_reaction,
            "substrate_reaction": self.substrate_reaction,
            "growth_reaction": self.growth_reaction,
            "model_id": self.model_id,
            "dropped_reactions": list(self.dropped_reactions),
            "lumped_reactions": list(self.lumped_reactions),
            "unapplied_regulations": [list(r) for r in self.unapplied_regulations],
            "excluded_ids": list(self.excluded_ids),
            "excluded_stoichiometry": None if self.excluded_stoichiometry is None else self.excluded_stoichiometry.tolist(),
            "flux_bounds": None if self.flux_bounds is None else self.flux_bounds.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KineticNetwork":
        n_rxn = len(d["reaction_ids"])
        return cls(
            reaction_ids=tuple(d["reaction_ids"]),
            metabolite_ids=tuple(d["metabolite_ids"]),
            fixed_ids=tuple(d["fixed_ids"]),
            stoichiometry=np.asarray(d["stoichiometry"], dtype=float).reshape(len(d["metabolite_ids"]), n_rxn),
            fixed_stoichiometry=np.asarray(d["fixed_stoichiometry"], dtype=float).reshape(len(d["fixed_ids"]), n_rxn),
            rate_laws=tuple(d["rate_laws"]),
            slot_reaction=np.asarray(d["slot_reaction"], dtype=int),
            slot_species=np.asarray(d["slot_species"], dtype=int),
            slot_role=np.asarray(d["slot_role"], dtype=int),
            fluxes=np.asarray(d["fluxes"], dtype=float),
            product_reaction=d["product_reaction"],
            substrate_reaction=d["substrate_reaction"],
            growth_reaction=d["growth_reaction"],
            model_id=d.get("model_id", ""),
            dropped_reactions=tuple(d.get("dropped_reactions", ())),
            lumped_reactions=tuple(d.get("lumped_reactions", ())),
            unapplied_regulations=tuple(tuple(r) for r in d.get("unapplied_regulations", ())),
            excluded_ids=tuple(d.get("excluded_ids", ())),
            excluded_stoichiometry=None
            if d.get("excluded_stoichiometry") is None
            else np.asarray(d["excluded_stoichiometry"], dtype=float).reshape(len(d.get("excluded_ids", ())), n_rxn),
            flux_bounds=None if d.get("flux_bounds") is None else np.asarray(d["flux_bounds"], dtype=float),
        )

    def digest(self) -> str:
        """Short hash of the network structure and fluxes (identifies cached CasADi functions)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _add_anthranilate_export(model: cobra.Model) -> None:
    """Add ``anth_c -> anth_e`` (ANTHt) and ``EX_anth_e`` to ``model`` (in place; a model we own)."""
    anth_c = model.metabolites.get_by_id("anth_c")
    if "anth_e" in model.metabolites:
        anth_e = model.metabolites.get_by_id("anth_e")
    else:
        anth_e = cobra.Metabolite("anth_e", formula=anth_c.formula, name="Anthranilate", compartment="e", charge=anth_c.charge)
    t = cobra.Reaction("ANTHt", name="Anthranilate export (diffusion)", lower_bound=-1000.0, upper_bound=1000.0)
    t.add_metabolites({anth_c: -1.0, anth_e: 1.0})
    ex = cobra.Reaction("EX_anth_e", name="Anthranilate exchange", lower_bound=0.0, upper_bound=1000.0)
    ex.add_metabolites({anth_e: -1.0})
    model.add_reactions([t, ex])


def anthranilate_model() -> cobra.Model:
    """The default anthranilate network as a new cobra model (bundled data only).

    e_coli_core + the shikimate branch copied from iJO1366 (:data:`SHIKIMATE_BRANCH`), an
    anthranilate export, ANPRT absent. The objective stays e_coli_core's ``Biomass_Ecoli_core``.
    """
    core = load_model("e_coli_core")
    ijo = load_model("iJO1366")
    missing = [r for r in SHIKIMATE_BRANCH if r not in ijo.reactions]
    if missing:
        raise NetworkError(f"iJO1366 lacks the shikimate reactions {missing}; expected {list(SHIKIMATE_BRANCH)}.")
    new = []
    for rid in SHIKIMATE_BRANCH:
        src = ijo.reactions.get_by_id(rid)
        r = cobra.Reaction(rid, name=src.name, lower_bound=src.lower_bound, upper_bound=src.upper_bound)
        r.subsystem = src.subsystem
        stoich = {}
        for m, c in src.metabolites.items():
            if m.id in core.metabolites:
                stoich[core.metabolites.get_by_id(m.id)] = c
            else:
                stoich[cobra.Metabolite(m.id, formula=m.formula, name=m.name, compartment=m.compartment, charge=m.charge)] = c
        r.add_metabolites(stoich)
        new.append(r)
    core.add_reactions(new)
    _add_anthranilate_export(core)
    core.id = "e_coli_core_anthranilate"
    return core


def ich360_anthranilate_model(path=None) -> cobra.Model:
    """iCH360 (shipped with mpc_bio, or ``path``) with an anthranilate export and a tryptophan supplement.

    ANPRT is removed by the knockouts (``NetworkSettings.knockouts``); the trpD9923 strain is then
    a tryptophan auxotroph, so the medium supplies L-tryptophan (``TRPt``: trp__L_e -> trp__L_c,
    ``EX_trp__L_e`` open for uptake), as in the experiments of the paper.
    """
    model = load_model(path or find_ich360())
    if "ANTHt" not in model.reactions:
        _add_anthranilate_export(model)
    if "trp__L_c" in model.metabolites and "EX_trp__L_e" not in model.reactions:
        trp_c = model.metabolites.get_by_id("trp__L_c")
        trp_e = cobra.Metabolite("trp__L_e", formula=trp_c.formula, name="L-Tryptophan", compartment="e", charge=trp_c.charge)
        t = cobra.Reaction("TRPt", name="Tryptophan uptake (supplement)", lower_bound=0.0, upper_bound=1000.0)
        t.add_metabolites({trp_e: -1.0, trp_c: 1.0})
        ex = cobra.Reaction("EX_trp__L_e", name="Tryptophan exchange", lower_bound=-1000.0, upper_bound=1000.0)
        ex.add_metabolites({trp_e: -1.0})
        model.add_reactions([t, ex])
    model.id = "iCH360_anthranilate"
    return model


def _resolve_model(settings: NetworkSettings) -> cobra.Model:
    if settings.model in (SMALL_MODEL, "anthranilate"):
        return anthranilate_model()
    if settings.model.lower() in ("ich360", DEFAULT_MODEL.lower()):
        return ich360_anthranilate_model()
    return load_model(settings.model)


def resolve_substrate(model: cobra.Model, settings: NetworkSettings, fluxes: dict[str, float] | None = None) -> str:
    """The substrate reaction: ``settings.substrate_reaction``, else the non-exchange reaction consuming
    the extracellular metabolite of the first ``uptake_bounds`` exchange (largest reference flux first).

    Raises
    ------
    NetworkError
        If no such reaction exists.
    """
    if settings.substrate_reaction is not None:
        return settings.substrate_reaction
    if not settings.uptake_bounds:
        raise NetworkError("network.substrate_reaction is not set and network.uptake_bounds is empty; set either.")
    ex_id = settings.uptake_bounds[0][0]
    if ex_id not in model.reactions:
        raise NetworkError(f"The uptake reaction {ex_id!r} of network.uptake_bounds is not in model {model.id!r}.")
    boundary = {r.id for r in model.boundary}
    cands = []
    for m in model.reactions.get_by_id(ex_id).metabolites:
        for r in m.reactions:
            if r.id in boundary:
                continue
            flux = 1.0 if fluxes is None else float(fluxes.get(r.id, 0.0))
            if r.metabolites[m] * flux < 0:
                cands.append((abs(flux), r.id))
    if not cands:
        raise NetworkError(f"No reaction of model {model.id!r} takes up the metabolite of {ex_id!r}; set network.substrate_reaction.")
    return max(cands)[1]


def _force_targets(model: cobra.Model, settings: NetworkSettings) -> dict[str, float]:
    """Bound each ``keep_reactions`` reaction pFBA could leave at zero to carry >= min_target_flux
    (inside the caller's ``with model:``) in the direction the reference constraints allow, forward
    (as written in the model) when both are; returns the imposed signed minimum per reaction."""
    eps = settings.min_target_flux
    imposed = {}
    for rid in settings.keep_reactions:
        if rid not in model.reactions or rid in settings.knockouts:
            continue
        r = model.reactions.get_by_id(rid)
        model.objective = r
        hi = model.slim_optimize(error_value=np.nan)
        model.objective = {r: -1.0}
        lo = -model.slim_optimize(error_value=np.nan)
        if not (np.isfinite(hi) and np.isfinite(lo)):
            raise NetworkError(f"The reference constraints are infeasible while placing network.keep_reactions {rid!r}.")
        if lo >= eps or hi <= -eps:
            continue  # it carries flux in every reference state
        fwd, rev = hi >= eps, lo <= -eps
        if not (fwd or rev):
            raise NetworkError(
                f"The reaction {rid!r} of network.keep_reactions can carry at most {max(hi, -lo):.3g} mmol/gDW/h at the "
                f"reference (network.min_target_flux = {eps:g}); lower min_target_flux or drop it from keep_reactions."
            )
        sign = 1.0 if fwd else -1.0
        if sign > 0:
            r.lower_bound = max(r.lower_bound, eps)
        else:
            r.upper_bound = min(r.upper_bound, -eps)
        imposed[rid] = sign * eps
    return imposed


def _growth_id(model: cobra.Model, settings: NetworkSettings) -> str:
    if settings.growth_reaction is not None:
        if settings.growth_reaction not in model.reactions:
            raise NetworkError(f"The growth reaction {settings.growth_reaction!r} is not in model {model.id!r}.")
        return settings.growth_reaction
    objs = [r.id for r in model.reactions if r.objective_coefficient != 0]
    if len(objs) != 1:
        raise NetworkError(
            f"Cannot infer the growth reaction of model {model.id!r} (objective reactions {objs}); set network.growth_reaction."
        )
    return objs[0]


def product_flux_from_yield(settings: NetworkSettings) -> float:
    """The reference product flux of ``reference_product = "yield"``: product_yield x the substrate uptake.

    The uptake is the rate of the first ``uptake_bounds`` exchange (mmol/gDW/h); the result is in
    mmol/gDW/h.

    Raises
    ------
    NetworkError
        If ``product_yield`` or ``uptake_bounds`` is missing.
    """
    if settings.product_yield is None:
        raise NetworkError(
            "network.reference_product = 'yield' needs network.product_yield (mol/mol); a scenario fills it from the "
            "fermentation data ([nomad.screening] fermentation_data, when the file exists; "
            "mpc_bio.nomad.settings.data_product_yield), a NetworkSettings built in Python must give it."
        )
    if not settings.uptake_bounds:
        raise NetworkError("network.reference_product = 'yield' needs the substrate uptake in network.uptake_bounds; it is empty.")
    return float(settings.product_yield) * float(settings.uptake_bounds[0][1])


def reference_fluxes(model: cobra.Model, settings: NetworkSettings, force_targets: bool = False) -> tuple[dict[str, float], str]:
    """Reference fluxes by pFBA with the product branch carrying flux.

    Steps (all inside ``with model:``, the caller's model is unchanged): fix the uptakes, knock
    out ``settings.knockouts``, maximise growth (mu*), require growth >= growth_fraction mu*,
    maximise the product flux (p*), fix the product at product_fraction p* (with
    ``reference_product = "yield"``: fix it at :func:`product_flux_from_yield` instead, with no
    growth bound, so the pFBA below maximises growth at that product flux); with
    ``force_targets`` every ``settings.keep_reactions`` reaction that could have zero flux is
    bounded to carry ``min_target_flux`` (in the direction allowed, forward when both are);
    then ``cobra.flux_analysis.pfba`` on growth.

    Returns
    -------
    fluxes : dict of str to float
        Flux of every reaction (mmol/gDW/h).
    growth_id : str
        The growth reaction used.

    Raises
    ------
    NetworkError
        If a reaction id is unknown, the model is infeasible or the product cannot carry flux.
    """
    growth = _growth_id(model, settings)
    for rid in (settings.product_reaction, resolve_substrate(model, settings)):
        if rid not in model.reactions:
            raise NetworkError(
                f"The network has no product/substrate reaction {rid!r} (model {model.id!r}); "
                f"set network.product_reaction / network.substrate_reaction to reactions of the model."
            )
    with model:
        for rid, uptake in settings.uptake_bounds:
            if rid not in model.reactions:
                raise NetworkError(f"The uptake reaction {rid!r} of network.uptake_bounds is not in model {model.id!r}.")
            model.reactions.get_by_id(rid).bounds = (-float(uptake), -float(uptake))
        for rid in settings.knockouts:
            if rid in model.reactions:
                model.reactions.get_by_id(rid).knock_out()
        model.objective = growth
        sol = model.optimize()
        if sol.status != "optimal" or not sol.objective_value or sol.objective_value <= settings.flux_tolerance:
            raise NetworkError(
                f"Maximising growth ({growth}) gave status {sol.status!r}, value {sol.objective_value!r}; "
                f"check network.uptake_bounds and knockouts."
            )
        mu_max = float(sol.objective_value)
        prod = model.reactions.get_by_id(settings.product_reaction)
        if settings.reference_product == "yield":
            p_ref = product_flux_from_yield(settings)
            prod.bounds = (p_ref, p_ref)
            mu_at_p = model.slim_optimize(error_value=np.nan)  # the objective is growth
            if not (np.isfinite(mu_at_p) and mu_at_p > settings.flux_tolerance):
                raise NetworkError(
                    f"The product flux {p_ref:.4g} mmol/gDW/h (network.product_yield {settings.product_yield:g} mol/mol x "
                    f"substrate uptake) leaves no growth in model {model.id!r}; check network.product_yield and uptake_bounds."
                )
        else:
            model.reactions.get_by_id(growth).lower_bound = settings.growth_fraction * mu_max
            model.objective = prod
            sol = model.optimize()
            p_max = float(sol.objective_value) if sol.status == "optimal" else 0.0
            if p_max <= settings.flux_tolerance:
                raise NetworkError(
                    f"The product reaction {settings.product_reaction!r} cannot carry flux at "
                    f"{settings.growth_fraction:.0%} of maximal growth (max {p_max:.3g}); the network has no product."
                )
            prod.bounds = (settings.product_fraction * p_max, settings.product_fraction * p_max)
        if force_targets:
            _force_targets(model, settings)
        model.objective = growth
        sol = cobra.flux_analysis.pfba(model, fraction_of_optimum=1.0)
        if sol.status != "optimal":
            raise NetworkError(f"pFBA of the reference state gave status {sol.status!r}.")
        fluxes = {k: float(v) for k, v in sol.fluxes.items()}
    return fluxes, growth


def _base_id(met: cobra.Metabolite) -> str:
    suffix = f"_{met.compartment}"
    return met.id[: -len(suffix)] if met.compartment and met.id.endswith(suffix) else met.id


def build_network(model: cobra.Model | None = None, settings: NetworkSettings | None = None) -> KineticNetwork:
    """Cut a kinetic network out of a cobra model around its pFBA reference state.

    Parameters
    ----------
    model : cobra.Model, optional
        Source model; ``None`` resolves ``settings.model`` (default: NOMAD's trpD9923 network
        from iCH360). The model is never modified.
    settings : NetworkSettings, optional
        Reaction subset, reduction, product/substrate/growth ids, uptakes, pFBA fractions and regulation.

    Returns
    -------
    KineticNetwork

    Raises
    ------
    NetworkError
        A listed reaction is unknown or carries no reference flux, the network has no product,
        the chosen subset is not at steady state for its balanced metabolites, or (with
        ``strict_regulations``) a regulation does not fit the network.
    """
    settings = settings or NetworkSettings()
    reduce = settings.reduce if settings.reduce is not None else (model is None and settings.model == DEFAULT_MODEL)
    model = _resolve_model(settings) if model is None else model
    fluxes, growth = reference_fluxes(model, settings, force_targets=reduce)
    substrate = resolve_substrate(model, settings, fluxes)
    lumped: tuple[str, ...] = ()
    source_reactions = [r.id for r in model.reactions if r not in model.boundary]
    if reduce:
        from mpc_bio.nomad.reduction import reduce_to_core

        reduced = reduce_to_core(
            model,
            fluxes,
            growth,
            subsystems=settings.core_subsystems,
            keep=settings.keep_reactions,
            flux_tolerance=settings.flux_tolerance,
            min_flux=settings.min_core_flux,
        )
        model, fluxes, growth, lumped = reduced.model, reduced.fluxes, reduced.growth_reaction, reduced.lumped_reactions
        if settings.model == DEFAULT_MODEL:
            model.id = DEFAULT_MODEL
    tol = settings.flux_tolerance
    exchange = {r.id for r in model.boundary}
    knocked = set(settings.knockouts)
    if settings.reactions is None:
        chosen = [r.id for r in model.reactions if r.id not in exchange and r.id not in knocked and abs(fluxes[r.id]) > tol]
    else:
        chosen = list(dict.fromkeys(settings.reactions))
        for rid in chosen:
            if rid not in model.reactions:
                raise NetworkError(f"The reaction {rid!r} of network.reactions is not in model {model.id!r}.")
            if abs(fluxes[rid]) <= tol:
                raise NetworkError(
                    f"The reaction {rid!r} carries no flux in the reference state (|v| = {abs(fluxes[rid]):.3g} "
                    f"<= flux_tolerance {tol:g} mmol/gDW/h); a kinetic model cannot hold it at steady state. "
                    f"Remove it from network.reactions or change the reference conditions."
                )
    for rid in (settings.product_reaction, substrate, growth):
        if rid not in chosen:
            raise NetworkError(f"The reaction {rid!r} (product, substrate or growth) must be in the kinetic network.")
    excluded = set(settings.kinetic_exclusions)
    fixed_comp = set(settings.fixed_compartments)

    def _kinetic_sides(rid: str) -> bool:
        mets = model.reactions.get_by_id(rid).metabolites
        return any(c < 0 and _base_id(m) not in excluded for m, c in mets.items()) and any(
            c > 0 and _base_id(m) not in excluded for m, c in mets.items()
        )

    if settings.reactions is None:
        # Water and proton transport (and similar) has no species left in a rate law: drop it.
        chosen = [r for r in chosen if _kinetic_sides(r) or r == growth]
    balanced: list[str] = []
    fixed: list[str] = []
    for rid in chosen:
        for m in model.reactions.get_by_id(rid).metabolites:
            if _base_id(m) in excluded:
                continue
            target = fixed if m.compartment in fixed_comp else balanced
            if m.id not in balanced and m.id not in fixed:
                target.append(m.id)
    met_index = {m: i for i, m in enumerate(balanced)}
    fix_index = {m: i for i, m in enumerate(fixed)}
    n_rxn = len(chosen)
    excluded_ids = sorted(
        {
            m.id
            for rid in chosen
            for m in model.reactions.get_by_id(rid).metabolites
            if _base_id(m) in excluded and m.compartment not in fixed_comp
        }
    )
    S_excl = np.array(
        [[model.reactions.get_by_id(rid).metabolites.get(model.metabolites.get_by_id(mid), 0.0) for rid in chosen] for mid in excluded_ids],
        dtype=float,
    ).reshape(len(excluded_ids), n_rxn)
    S = np.zeros((len(balanced), n_rxn))
    Sf = np.zeros((len(fixed), n_rxn))
    laws: list[str] = []
    slot_r: list[int] = []
    slot_s: list[int] = []
    slot_role: list[int] = []
    v = np.array([fluxes[r] for r in chosen])
    for j, rid in enumerate(chosen):
        rxn = model.reactions.get_by_id(rid)
        reactants, products = [], []
        for m, c in rxn.metabolites.items():
            if _base_id(m) in excluded:
                continue
            if m.id in met_index:
                S[met_index[m.id], j] += c
                sp = met_index[m.id]
            else:
                Sf[fix_index[m.id], j] += c
                sp = len(balanced) + fix_index[m.id]
            (reactants if c < 0 else products).append((sp, _base_id(m), m.compartment))
        if rid == growth:
            law = "growth"
        elif (
            len({c for _, _, c in reactants + products}) > 1
            and sorted(b for _, b, _ in reactants) == sorted(b for _, b, _ in products)
            and any(c in fixed_comp for _, _, c in reactants + products)
        ):
            law = "mass_action"  # transport across the outer boundary (NOMAD: periplasm <-> extracellular)
        else:
            law = "convenience"
        if not reactants or (not products and law != "growth"):
            raise NetworkError(
                f"The reaction {rid!r} has no reactant or no product left after removing {sorted(excluded)} "
                f"(boundary or water/proton-only reactions cannot have kinetics); remove it from network.reactions."
            )
        laws.append(law)
        if law == "mass_action":
            continue
        for sp, _, _ in reactants:
            slot_r.append(j), slot_s.append(sp), slot_role.append(1)
        if law == "convenience":
            for sp, _, _ in products:
                slot_r.append(j), slot_s.append(sp), slot_role.append(-1)
    sp_index = {m: k for k, m in enumerate(balanced + fixed)}
    unapplied: list[tuple[str, str, str]] = []
    for rid, mid, kind in settings.regulations:
        if rid not in chosen or mid not in sp_index:
            if settings.strict_regulations:
                what = f"The regulated reaction {rid!r}" if rid not in chosen else f"The regulator {mid!r} of {rid!r}"
                raise NetworkError(
                    f"{what} (network.regulations) is not in the kinetic network; remove the regulation or set "
                    f"network.strict_regulations = false to skip it."
                )
            unapplied.append((rid, mid, kind))
            continue
        j = chosen.index(rid)
        roles = KIND_ROLES[kind]
        if laws[j] != "convenience" and any(r in (-3, -4) for r in roles):
            raise NetworkError(
                f"The {kind} inhibition of {rid!r} by {mid!r} needs the convenience rate law; {rid!r} has "
                f"{laws[j]!r} kinetics (use 'noncompetitive' or 'activation')."
            )
        for role in roles:
            slot_r.append(j)
            slot_s.append(sp_index[mid])
            slot_role.append(role)
    residual = S @ v
    bad = np.flatnonzero(np.abs(residual) > max(1e-6, 1e3 * tol))
    if bad.size:
        worst = [(balanced[i], float(residual[i])) for i in bad[:5]]
        raise NetworkError(
            f"The chosen reactions are not at steady state: net production (mmol/gDW/h) of {worst}. "
            f"Add the reactions that produce or consume these metabolites to network.reactions."
        )
    dropped = tuple(r for r in source_reactions if r not in chosen)
    return KineticNetwork(
        reaction_ids=tuple(chosen),
        metabolite_ids=tuple(balanced),
        fixed_ids=tuple(fixed),
        stoichiometry=S,
        fixed_stoichiometry=Sf,
        rate_laws=tuple(laws),
        slot_reaction=np.asarray(slot_r, dtype=int),
        slot_species=np.asarray(slot_s, dtype=int),
        slot_role=np.asarray(slot_role, dtype=int),
        fluxes=v,
        excluded_ids=tuple(excluded_ids),
        excluded_stoichiometry=S_excl,
        flux_bounds=np.array([model.reactions.get_by_id(r).bounds for r in chosen], dtype=float),
        product_reaction=settings.product_reaction,
        substrate_reaction=substrate,
        growth_reaction=growth,
        model_id=str(model.id),
        dropped_reactions=dropped,
        lumped_reactions=lumped,
        unapplied_regulations=tuple(unapplied),
    )
