"""Reduction of a genome-scale or compact model to NOMAD's core network with one lumped growth reaction.

The rule (NOMAD Methods, "Reduced model generation"): keep every reaction of the core subsystems
(glycolysis, pentose phosphate pathway, Krebs cycle, anaplerotic reactions, oxidative
phosphorylation, the aromatic amino acid (shikimate and chorismate) pathways, glutamate and
glutamine metabolism, pyruvate metabolism) and every transport (a reaction whose metabolites lie
in more than one compartment) that carries at least ``min_flux`` at the reference state, plus the
named ``keep_reactions`` (NOMAD's design targets, given a small flux at the reference); every
other reaction carrying flux is lumped with the biomass reaction into one growth reaction. (A
pathway carrying a trace flux, such as the export of formate made by lumped C1 metabolism,
would give its pools turnover times of hours, far slower than growth.)

Subsystems come from the model itself when it annotates them, otherwise from iJO1366 (bundled
with COBRApy) through the reaction's BiGG id; iCH360 reactions carry BiGG ids but no subsystem.

The lumped growth reaction is the net conversion of the biomass reaction and every lumped
reaction at the reference fluxes, per unit of growth: for each metabolite m of the kept
reactions, nu_m = (S_m,biomass v_biomass + sum_lumped S_m,r v_r) / v_biomass. The reduced
network is then exactly at steady state at the reference fluxes; metabolites touched only by
lumped reactions leave the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cobra

__all__ = [
    "CORE_SUBSYSTEMS",
    "LUMPED_GROWTH_ID",
    "PAPER_TARGETS",
    "ReducedNetwork",
    "is_transport",
    "reaction_subsystems",
    "reduce_to_core",
]

#: iJO1366 subsystem names kept in the reduced network.
CORE_SUBSYSTEMS: tuple[str, ...] = (
    "Glycolysis/Gluconeogenesis",
    "Pentose Phosphate Pathway",
    "Citric Acid Cycle",
    "Anaplerotic Reactions",
    "Oxidative Phosphorylation",
    "Pyruvate Metabolism",
    "Tyrosine, Tryptophan, and Phenylalanine Metabolism",
    "Glutamate Metabolism",
    "Biomass and maintenance functions",
)

#: Reactions NOMAD's anthranilate designs target (paper, Figure 4 and text): kept even when the
#: reference pFBA gives them no flux.
PAPER_TARGETS: tuple[str, ...] = ("PPS", "PYK", "PGI", "TKT1", "TKT2", "TALA", "G6PDH2r", "GLUDy", "GLNS", "ICL", "ME2", "ADK1")

#: Id of the lumped growth reaction.
LUMPED_GROWTH_ID = "GROWTH_LUMP"


@dataclass(frozen=True)
class ReducedNetwork:
    """A reduced cobra model and its reference fluxes.

    Attributes
    ----------
    model : cobra.Model
        Kept reactions and the lumped growth reaction (no exchanges).
    fluxes : dict of str to float
        Reference fluxes of its reactions (mmol/gDW/h).
    growth_reaction : str
        Id of the lumped growth reaction.
    lumped_reactions : tuple of str
        Reactions of the source model folded into growth.
    subsystem_counts : tuple of (str, int)
        Kept reactions per subsystem (``"transport"`` for multi-compartment reactions).
    """

    model: cobra.Model
    fluxes: dict[str, float]
    growth_reaction: str
    lumped_reactions: tuple[str, ...]
    subsystem_counts: tuple[tuple[str, int], ...]


@lru_cache(maxsize=1)
def _ijo1366_subsystems() -> dict[str, str]:
    from mpc_bio.metabolism.models import load_model

    return {r.id: r.subsystem for r in load_model("iJO1366").reactions}


def _bigg_id(reaction: cobra.Reaction) -> str:
    bid = reaction.annotation.get("bigg.reaction", reaction.id)
    return bid[0] if isinstance(bid, list) else str(bid)


def reaction_subsystems(model: cobra.Model) -> dict[str, str]:
    """Subsystem of every reaction: the model's own annotation, else iJO1366's by BiGG id, else ``""``."""
    table = None
    out = {}
    for r in model.reactions:
        if r.subsystem:
            out[r.id] = r.subsystem
            continue
        table = table if table is not None else _ijo1366_subsystems()
        out[r.id] = table.get(_bigg_id(r), table.get(r.id, ""))
    return out


def is_transport(reaction: cobra.Reaction) -> bool:
    """True when the reaction's metabolites lie in more than one compartment."""
    return len({m.compartment for m in reaction.metabolites}) > 1


def reduce_to_core(
    model: cobra.Model,
    fluxes: dict[str, float],
    growth: str,
    *,
    subsystems: tuple[str, ...] = CORE_SUBSYSTEMS,
    keep: tuple[str, ...] = PAPER_TARGETS,
    flux_tolerance: float = 1e-7,
    min_flux: float = 0.0,
) -> ReducedNetwork:
    """Keep the core subsystems and transports carrying flux (plus ``keep``), lump the rest into growth.

    Parameters
    ----------
    model : cobra.Model
        Source model (not modified).
    fluxes : dict of str to float
        Its reference fluxes (mmol/gDW/h), at steady state.
    growth : str
        Its growth (biomass) reaction.
    subsystems : tuple of str
        Subsystems kept (names as in iJO1366).
    keep : tuple of str
        Reactions kept whatever their subsystem when they carry flux.
    flux_tolerance : float
        |v| at or below this is no flux (mmol/gDW/h).
    min_flux : float
        Core and transport reactions with |v| below this are lumped too (mmol/gDW/h; not ``keep``).

    Returns
    -------
    ReducedNetwork
    """
    import cobra

    v_growth = float(fluxes[growth])
    if v_growth <= flux_tolerance:
        raise ValueError(f"The growth reaction {growth!r} carries no reference flux ({v_growth!r}); nothing to lump.")
    sub = reaction_subsystems(model)
    boundary = {r.id for r in model.boundary}
    wanted = set(subsystems)
    kept: list[str] = []
    lumped: list[str] = []
    counts: dict[str, int] = {}
    for r in model.reactions:
        if r.id in boundary or r.id == growth or abs(fluxes[r.id]) <= flux_tolerance:
            continue
        if r.id in keep or ((is_transport(r) or sub[r.id] in wanted) and abs(fluxes[r.id]) >= min_flux):
            kept.append(r.id)
            label = "transport" if is_transport(r) else sub[r.id] or "unassigned"
            counts[label] = counts.get(label, 0) + 1
        else:
            lumped.append(r.id)
    kept_mets = {m.id for rid in kept for m in model.reactions.get_by_id(rid).metabolites}
    net: dict[str, float] = {}
    for rid in lumped + [growth]:
        for m, c in model.reactions.get_by_id(rid).metabolites.items():
            net[m.id] = net.get(m.id, 0.0) + c * float(fluxes[rid]) / v_growth
    scale = max(abs(c) for c in net.values())
    lump = {mid: c for mid, c in net.items() if mid in kept_mets and abs(c) > 1e-12 * scale}
    new = cobra.Model(f"{model.id}_core")
    mets: dict[str, cobra.Metabolite] = {}

    def met(mid: str) -> cobra.Metabolite:
        if mid not in mets:
            src = model.metabolites.get_by_id(mid)
            mets[mid] = cobra.Metabolite(mid, formula=src.formula, name=src.name, compartment=src.compartment, charge=src.charge)
        return mets[mid]

    reactions = []
    for rid in kept:
        src = model.reactions.get_by_id(rid)
        r = cobra.Reaction(rid, name=src.name, lower_bound=src.lower_bound, upper_bound=src.upper_bound)
        r.subsystem = sub[rid]
        r.add_metabolites({met(m.id): c for m, c in src.metabolites.items()})
        reactions.append(r)
    g = cobra.Reaction(LUMPED_GROWTH_ID, name="Growth (biomass and lumped biosynthesis)", lower_bound=0.0, upper_bound=1000.0)
    g.subsystem = "Biomass and maintenance functions"
    g.add_metabolites({met(mid): c for mid, c in sorted(lump.items())})
    reactions.append(g)
    new.add_reactions(reactions)
    new.objective = LUMPED_GROWTH_ID
    out_fluxes = {rid: float(fluxes[rid]) for rid in kept}
    out_fluxes[LUMPED_GROWTH_ID] = v_growth
    return ReducedNetwork(new, out_fluxes, LUMPED_GROWTH_ID, tuple(lumped), tuple(sorted(counts.items())))
