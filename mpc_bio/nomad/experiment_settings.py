"""Settings of the NOMAD paper's experiments (``mpc-bio nomad experiment ...``).

The experiments run on the design stage's settings (``[nomad.design]``: NRA, ranking,
verification reactor); these classes hold what each experiment adds, with the paper's values as
defaults (NOMAD, Results and Methods): the closeness study's concentration bounds 2, 3, 10 and 20
fold (Fig. 3), the experimental strains aroG^fbr and aroG^fbr + tktA against the top 5 designs
(Fig. 5), and the +-50 % expression sensitivity with 10 draws per model (Fig. 7).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpc_bio.nomad.settings import NomadSettings
from mpc_bio.settings import FOLD, FRACTION, POSITIVE, setting

__all__ = ["ClosenessSettings", "StrainComparisonSettings", "RobustnessSettings"]


@dataclass(frozen=True)
class ClosenessSettings(NomadSettings):
    """The phenotype-closeness study: NRA design groups at several concentration bounds."""

    concentration_folds: tuple[float, ...] = setting(
        (2.0, 3.0, 10.0, 20.0), **FOLD, min_items=1, doc="Concentration bound of each design group (NRA max_concentration_fold)."
    )
    designs_per_model: int = setting(
        1, low=1, doc="Designs of each model's NRA enumeration in its group (1: the optimum; more: the next best within the fraction)."
    )
    include_mca: bool = setting(True, doc="Add the unconstrained MCA baseline group (top yield control coefficients, baseline_fold).")
    batch_time: float = setting(
        48.0, unit="h", **POSITIVE, doc="Simulated batch time: long enough for slow groups to exhaust their glucose (paper: ~40 h)."
    )
    n_points: int = setting(97, low=2, doc="Output time points (including t = 0).")


@dataclass(frozen=True)
class StrainComparisonSettings(NomadSettings):
    """The experimental strains (aroG^fbr, aroG^fbr + tktA) against the top designs."""

    top_n: int = setting(5, low=1, doc="Top-ranked designs compared (paper: 5).")
    tkt_fold: float = setting(5.0, **FOLD, doc="Transketolase (TKT1 and TKT2) activity fold of aroG^fbr + tktA (paper: 5).")


@dataclass(frozen=True)
class RobustnessSettings(NomadSettings):
    """The +-50 % expression sensitivity of the top designs (all members together, each alone)."""

    top_n: int = setting(5, low=1, doc="Top-ranked designs perturbed.")
    perturbation: float = setting(
        0.5, **FRACTION, strict=True, high_strict=True, doc="Half-width of the uniform relative perturbation (paper: 0.5)."
    )
    n_draws: int = setting(10, low=1, doc="Draws per design x model x mode (paper: 10).")
    seed: int = setting(0, low=0, doc="Seed of the draws.")
    robust_fraction: float = setting(
        0.9,
        **FRACTION,
        doc="A design is robust when its mean titer beats the reference's in at least this fraction of draws.",
    )
    each_enzyme: bool = setting(True, doc="Also perturb each member alone (paper); false: all members together only.")
    n_workers: int = setting(1, low=1, doc="Processes over designs (1 = in-process).")
