"""Kinetic networks cut out of cobra models, with their reference fluxes from pFBA.

The default network is the anthranilate case of NOMAD built only from COBRApy's bundled data:
the e_coli_core reactions, the shikimate branch of iJO1366 (DDPA, DHQS, DHQTi, SHK3Dr, SHKK,
PSCVT, CHORS, ANS), an anthranilate export (``ANTHt`` and ``EX_anth_e``), no ANPRT (the
trpD9923 strain) and e_coli_core's lumped growth reaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import cobra
import numpy as np

from mpc_bio.errors import MpcBioError
from mpc_bio.metabolism.models import find_ich360, load_model
from mpc_bio.nomad.settings import NetworkSettings

__all__ = [
    "SHIKIMATE_BRANCH",
    "KineticNetwork",
    "NetworkError",
    "anthranilate_model",
    "ich360_anthranilate_model",
    "build_network",
    "reference_fluxes",
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
        Non-exchange reactions of the model left out (no reference flux or not selected).
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
        anth_e = cobra.Metabolite("anth_e", formula=anth_c.formula, name="Anthranilate", compartment="e",
                                  charge=anth_c.charge)
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
        stoich = {}
        for m, c in src.metabolites.items():
            if m.id in core.metabolites:
                stoich[core.metabolites.get_by_id(m.id)] = c
            else:
                stoich[cobra.Metabolite(m.id, formula=m.formula, name=m.name, compartment=m.compartment,
                                        charge=m.charge)] = c
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
        trp_e = cobra.Metabolite("trp__L_e", formula=trp_c.formula, name="L-Tryptophan", compartment="e",
                                 charge=trp_c.charge)
        t = cobra.Reaction("TRPt", name="Tryptophan uptake (supplement)", lower_bound=0.0, upper_bound=1000.0)
        t.add_metabolites({trp_e: -1.0, trp_c: 1.0})
        ex = cobra.Reaction("EX_trp__L_e", name="Tryptophan exchange", lower_bound=-1000.0, upper_bound=1000.0)
        ex.add_metabolites({trp_e: -1.0})
        model.add_reactions([t, ex])
    model.id = "iCH360_anthranilate"
    return model


def _resolve_model(settings: NetworkSettings) -> cobra.Model:
    if settings.model == "anthranilate":
        return anthranilate_model()
    if settings.model.lower() == "ich360":
        return ich360_anthranilate_model()
    return load_model(settings.model)


def _growth_id(model: cobra.Model, settings: NetworkSettings) -> str:
    if settings.growth_reaction is not None:
        if settings.growth_reaction not in model.reactions:
            raise NetworkError(f"The growth reaction {settings.growth_reaction!r} is not in model {model.id!r}.")
        return settings.growth_reaction
    objs = [r.id for r in model.reactions if r.objective_coefficient != 0]
    if len(objs) != 1:
        raise NetworkError(
            f"Cannot infer the growth reaction of model {model.id!r} (objective reactions {objs}); "
            f"set network.growth_reaction."
        )
    return objs[0]


def reference_fluxes(model: cobra.Model, settings: NetworkSettings) -> tuple[dict[str, float], str]:
    """Reference fluxes by pFBA with the product branch carrying flux.

    Steps (all inside ``with model:``, the caller's model is unchanged): fix the uptakes, knock
    out ``settings.knockouts``, maximise growth (mu*), require growth >= growth_fraction mu*,
    maximise the product flux (p*), fix the product at product_fraction p*, then
    ``cobra.flux_analysis.pfba`` on growth.

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
    for rid in (settings.product_reaction, settings.substrate_reaction):
        if rid not in model.reactions:
            raise NetworkError(
                f"The network has no product/substrate reaction {rid!r} (model {model.id!r}); "
                f"set network.product_reaction / network.substrate_reaction to reactions of the model."
            )
    with model:
        for rid, uptake in settings.uptake_bounds:
            if rid not in model.reactions:
                raise NetworkError(
                    f"The uptake reaction {rid!r} of network.uptake_bounds is not in model {model.id!r}."
                )
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
        model.reactions.get_by_id(growth).lower_bound = settings.growth_fraction * mu_max
        prod = model.reactions.get_by_id(settings.product_reaction)
        model.objective = prod
        sol = model.optimize()
        p_max = float(sol.objective_value) if sol.status == "optimal" else 0.0
        if p_max <= settings.flux_tolerance:
            raise NetworkError(
                f"The product reaction {settings.product_reaction!r} cannot carry flux at "
                f"{settings.growth_fraction:.0%} of maximal growth (max {p_max:.3g}); the network has no product."
            )
        prod.bounds = (settings.product_fraction * p_max, settings.product_fraction * p_max)
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
        Source model; ``None`` resolves ``settings.model`` (default: the anthranilate network).
        The model is never modified.
    settings : NetworkSettings, optional
        Reaction subset, product/substrate/growth ids, uptakes and pFBA fractions.

    Returns
    -------
    KineticNetwork

    Raises
    ------
    NetworkError
        A listed reaction is unknown or carries no reference flux, the network has no product,
        or the chosen subset is not at steady state for its balanced metabolites.
    """
    settings = settings or NetworkSettings()
    model = _resolve_model(settings) if model is None else model
    fluxes, growth = reference_fluxes(model, settings)
    tol = settings.flux_tolerance
    exchange = {r.id for r in model.boundary}
    knocked = set(settings.knockouts)
    if settings.reactions is None:
        chosen = [r.id for r in model.reactions
                  if r.id not in exchange and r.id not in knocked and abs(fluxes[r.id]) > tol]
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
    for rid in (settings.product_reaction, settings.substrate_reaction, growth):
        if rid not in chosen:
            raise NetworkError(f"The reaction {rid!r} (product, substrate or growth) must be in the kinetic network.")
    excluded = set(settings.kinetic_exclusions)
    fixed_comp = set(settings.fixed_compartments)

    def _kinetic_sides(rid: str) -> bool:
        mets = model.reactions.get_by_id(rid).metabolites
        return (any(c < 0 and _base_id(m) not in excluded for m, c in mets.items())
                and any(c > 0 and _base_id(m) not in excluded for m, c in mets.items()))

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
        elif (len({c for _, _, c in reactants + products}) > 1
              and sorted(b for _, b, _ in reactants) == sorted(b for _, b, _ in products)):
            law = "mass_action"
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
    for rid, mid, kind in settings.regulations:
        if rid not in chosen:
            raise NetworkError(f"The regulated reaction {rid!r} of network.regulations is not in the kinetic network.")
        if mid not in sp_index:
            raise NetworkError(
                f"The regulator {mid!r} of {rid!r} (network.regulations) is not a metabolite of the kinetic network."
            )
        slot_r.append(chosen.index(rid))
        slot_s.append(sp_index[mid])
        slot_role.append(2 if kind == "activation" else -2)
    residual = S @ v
    bad = np.flatnonzero(np.abs(residual) > max(1e-6, 1e3 * tol))
    if bad.size:
        worst = [(balanced[i], float(residual[i])) for i in bad[:5]]
        raise NetworkError(
            f"The chosen reactions are not at steady state: net production (mmol/gDW/h) of {worst}. "
            f"Add the reactions that produce or consume these metabolites to network.reactions."
        )
    dropped = tuple(r.id for r in model.reactions if r.id not in exchange and r.id not in chosen)
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
        product_reaction=settings.product_reaction,
        substrate_reaction=settings.substrate_reaction,
        growth_reaction=growth,
        model_id=str(model.id),
        dropped_reactions=dropped,
    )
