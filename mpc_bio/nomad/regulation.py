"""Allosteric regulation as rate-law modifiers, and strain modifications that remove it.

A regulation is a triple (reaction id, modifier metabolite id, kind). Kinds and their effect on the
rate (x: modifier concentration in mM, K: its constant in mM, sampled like a Km from a saturation
x/(x + K), see :mod:`mpc_bio.nomad.kinetics`):

- ``"activation"``: v x x/(Ka + x);
- ``"noncompetitive"`` (alias ``"inhibition"``): v x Ki/(Ki + x);
- ``"competitive"``: x/Ki added to the convenience denominator;
- ``"uncompetitive"``: the bound-state terms of the convenience denominator multiplied by (1 + x/Ki);
- ``"mixed"``: one competitive and one uncompetitive constant (two slots).

The default set (:data:`SHIKIMATE_REGULATIONS`) is the end-product feedback of the aromatic
amino acid pathway that NOMAD adds to its anthranilate models (DDPA inhibited by phenylalanine
and tyrosine, anthranilate synthase by tryptophan) together with the end-product inhibition of
the two chorismate mutase branches; :data:`CENTRAL_REGULATIONS` lists well-established
allosteric effectors of E. coli central and nitrogen metabolism that can be added in the settings
(the shipped anthranilate configuration adds glutamine synthetase's feedback by glutamine).

:data:`AROG_FBR` (feedback-resistant DAHP synthase, aroG^fbr) removes the inhibition of DDPA by
phenylalanine; :data:`AROG_FBR_TKTA` adds a 5-fold transketolase (TKT1 and TKT2), the two
engineered strains NOMAD compares its designs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpc_bio.errors import MpcBioError

if TYPE_CHECKING:  # numpy is imported where it is used: the settings import this module, and `validate` needs no numpy
    import numpy as np

    from mpc_bio.nomad.network import KineticNetwork

__all__ = [
    "KIND_ROLES",
    "ROLE_ACTIVATOR",
    "ROLE_COMPETITIVE",
    "ROLE_NONCOMPETITIVE",
    "ROLE_PRODUCT",
    "ROLE_SUBSTRATE",
    "ROLE_UNCOMPETITIVE",
    "AROG_FBR",
    "AROG_FBR_TKTA",
    "CENTRAL_REGULATIONS",
    "REGULATION_KINDS",
    "SHIKIMATE_REGULATIONS",
    "STRAINS",
    "RegulationError",
    "StrainModification",
    "apply_strain",
    "regulation_slots",
]

#: Saturation-slot roles (``KineticNetwork.slot_role``): substrate and product saturations, then
#: the allosteric modifiers.
ROLE_SUBSTRATE, ROLE_PRODUCT = 1, -1
ROLE_ACTIVATOR, ROLE_NONCOMPETITIVE, ROLE_COMPETITIVE, ROLE_UNCOMPETITIVE = 2, -2, -3, -4
#: Slot roles per regulation kind (mixed inhibition has a competitive and an uncompetitive constant).
KIND_ROLES: dict[str, tuple[int, ...]] = {
    "activation": (ROLE_ACTIVATOR,),
    "inhibition": (ROLE_NONCOMPETITIVE,),
    "noncompetitive": (ROLE_NONCOMPETITIVE,),
    "competitive": (ROLE_COMPETITIVE,),
    "uncompetitive": (ROLE_UNCOMPETITIVE,),
    "mixed": (ROLE_COMPETITIVE, ROLE_UNCOMPETITIVE),
}

#: Accepted regulation kinds (``"inhibition"`` is noncompetitive inhibition).
REGULATION_KINDS: tuple[str, ...] = ("activation", "inhibition", "noncompetitive", "competitive", "uncompetitive", "mixed")

#: End-product feedback of the aromatic amino acid pathway (iCH360/BiGG ids). DAHP synthase
#: (DDPA: aroG, aroF) by phenylalanine and tyrosine, anthranilate synthase (ANS: trpE) by
#: tryptophan (competitive with chorismate), chorismate mutase (CHORM: pheA, tyrA) by
#: phenylalanine and tyrosine, prephenate dehydratase (PPNDH: pheA) by phenylalanine and
#: prephenate dehydrogenase (PPND: tyrA) by tyrosine: five regulated shikimate-pathway reactions.
SHIKIMATE_REGULATIONS: tuple[tuple[str, str, str], ...] = (
    ("DDPA", "phe__L_c", "noncompetitive"),
    ("DDPA", "tyr__L_c", "noncompetitive"),
    ("ANS", "trp__L_c", "competitive"),
    ("CHORM", "phe__L_c", "noncompetitive"),
    ("CHORM", "tyr__L_c", "noncompetitive"),
    ("PPNDH", "phe__L_c", "noncompetitive"),
    ("PPND", "tyr__L_c", "noncompetitive"),
)

#: Well-established allosteric effectors of E. coli central metabolism (opt-in): glutamine
#: synthetase (GLNS) held back by glutamine (adenylylation and cumulative feedback; without it
#: nitrogen assimilation has almost no restoring force in the kinetic models),
#: phosphofructokinase (pep inhibits, adp activates), pyruvate kinase (fdp activates),
#: PEP carboxylase (acetyl-CoA and fdp activate, aspartate inhibits), citrate synthase (NADH and
#: 2-oxoglutarate inhibit), isocitrate lyase (pep and 3-phosphoglycerate inhibit). Product
#: inhibition (NADPH of G6PDH2r, NADH of PDH) is already in the reversible rate laws.
CENTRAL_REGULATIONS: tuple[tuple[str, str, str], ...] = (
    ("GLNS", "gln__L_c", "noncompetitive"),
    ("PFK", "pep_c", "noncompetitive"),
    ("PFK", "adp_c", "activation"),
    ("PYK", "fdp_c", "activation"),
    ("PPC", "accoa_c", "activation"),
    ("PPC", "fdp_c", "activation"),
    ("PPC", "asp__L_c", "noncompetitive"),
    ("CS", "nadh_c", "noncompetitive"),
    ("CS", "akg_c", "noncompetitive"),
    ("ICL", "pep_c", "noncompetitive"),
    ("ICL", "3pg_c", "noncompetitive"),
)

#: Constant given to a removed inhibitor (mM): x/Ki and x/(Ki + x) vanish in double precision.
REMOVED_INHIBITOR_CONSTANT = 1e100
#: Constant given to a removed activator (mM): x/(Ka + x) = 1 in double precision.
REMOVED_ACTIVATOR_CONSTANT = 1e-100


class RegulationError(MpcBioError):
    """A regulation or strain modification does not fit the network."""


@dataclass(frozen=True)
class StrainModification:
    """A named genetic modification of every model of an ensemble.

    Attributes
    ----------
    name : str
        Label of the strain (``"aroGfbr"``).
    vmax_folds : tuple of (str, float)
        Reactions whose maximal rate is multiplied (reaction id, fold > 0).
    removed_regulations : tuple of (str, str or None)
        Regulations taken out (reaction id, modifier id; ``None`` removes every modifier of the reaction).
    """

    name: str
    vmax_folds: tuple[tuple[str, float], ...] = ()
    removed_regulations: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"The 'name' parameter of StrainModification must be a non-empty string. Got {self.name!r} instead.")
        for rid, fold in self.vmax_folds:
            if isinstance(fold, bool) or not isinstance(fold, (int, float)) or not fold > 0:
                raise ValueError(
                    f"The 'vmax_folds' parameter of StrainModification must hold positive folds. Got {fold!r} for {rid!r} instead."
                )


#: aroG^fbr: DAHP synthase no longer inhibited by phenylalanine (paper: "removing the inhibition of
#: DDPA by phenylalanine").
AROG_FBR = StrainModification("aroGfbr", removed_regulations=(("DDPA", "phe__L_c"),))
#: aroG^fbr + tktA: additionally 5-fold transketolase activity (TKT1 and TKT2).
AROG_FBR_TKTA = StrainModification("aroGfbr_tktA", vmax_folds=(("TKT1", 5.0), ("TKT2", 5.0)), removed_regulations=(("DDPA", "phe__L_c"),))
#: Named strains by label.
STRAINS: dict[str, StrainModification] = {s.name: s for s in (AROG_FBR, AROG_FBR_TKTA)}


def regulation_slots(network: "KineticNetwork", reaction: str, modifier: str | None = None) -> np.ndarray:
    """Indices of the allosteric slots of ``reaction`` (of ``modifier`` only when given).

    Raises
    ------
    RegulationError
        If the reaction is not in the network or has no such modifier.
    """
    import numpy as np

    if reaction not in network.reaction_ids:
        raise RegulationError(f"The regulated reaction {reaction!r} is not in the kinetic network.")
    j = network.reaction_ids.index(reaction)
    mask = (network.slot_reaction == j) & (np.abs(network.slot_role) >= 2)
    if modifier is not None:
        if modifier not in network.species_ids:
            raise RegulationError(f"The modifier {modifier!r} of {reaction!r} is not a species of the network.")
        mask &= network.slot_species == network.species_ids.index(modifier)
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        present = sorted(
            {
                network.species_ids[int(network.slot_species[k])]
                for k in np.flatnonzero((network.slot_reaction == j) & (np.abs(network.slot_role) >= 2))
            }
        )
        raise RegulationError(
            f"The reaction {reaction!r} has no allosteric modifier {modifier!r} in the network "
            f"(its modifiers: {present}); check network.regulations."
        )
    return idx


def apply_strain(
    network: "KineticNetwork", K: np.ndarray, vmax: np.ndarray, modification: StrainModification
) -> tuple[np.ndarray, np.ndarray]:
    """Saturation constants and maximal rates of the modified strain (inputs are not changed).

    Parameters
    ----------
    network : KineticNetwork
    K : ndarray, shape (..., n_slots)
        Saturation and regulation constants (mM), one row per model.
    vmax : ndarray, shape (..., n_rxn)
        Maximal rates (mmol/gDW/h).
    modification : StrainModification

    Returns
    -------
    K, vmax : ndarray
        Removed inhibitors get Ki = 1e100 mM and removed activators Ka = 1e-100 mM, so their
        factor is exactly 1 (no regulation); Vmax multiplied by the folds.
    """
    import numpy as np

    K = np.array(K, dtype=float, copy=True)
    vmax = np.array(vmax, dtype=float, copy=True)
    for rid, mid in modification.removed_regulations:
        for k in regulation_slots(network, rid, mid):
            K[..., k] = REMOVED_ACTIVATOR_CONSTANT if network.slot_role[k] == ROLE_ACTIVATOR else REMOVED_INHIBITOR_CONSTANT
    for rid, fold in modification.vmax_folds:
        if rid not in network.reaction_ids:
            raise RegulationError(f"The strain {modification.name!r} changes {rid!r}, which is not in the network.")
        vmax[..., network.reaction_ids.index(rid)] *= float(fold)
    return K, vmax
