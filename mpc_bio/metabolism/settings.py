"""Settings of the split-flux pFBA solve (one frozen, validated dataclass for the stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mpc_bio.errors import MpcBioError
from mpc_bio.settings import Settings, setting

__all__ = ["PFBASettings", "SettingsError", "DEFAULT_INPUTS", "TIE_BREAKS"]

#: Tie-break rules among the alternative optima of the total-flux stage (3): ``"l2"`` the point of
#: minimum Euclidean norm of the optimal face (unique, continuous in the inputs), ``"none"`` the
#: simplex vertex HiGHS happens to return (may jump between neighbouring inputs).
TIE_BREAKS = ("l2", "none")

#: Default named uptake inputs: input name -> exchange reaction id (COBRA sign: uptake < 0).
DEFAULT_INPUTS: tuple[tuple[str, str], ...] = (("glucose", "EX_glc__D_e"), ("oxygen", "EX_o2_e"))


class SettingsError(MpcBioError):
    """A settings value has the wrong type or lies outside its allowed range."""


_TOL = {"unit": "-", "low": 0.0, "strict": True, "high": 1e-3, "high_strict": True}


@dataclass(frozen=True)
class PFBASettings(Settings):
    """How each sample point is solved: named uptakes, relaxation and tolerances.

    The solve is lexicographic (paper 1, Eq. 3-4): (1) if the fixed uptakes and the maintenance
    demand cannot all be met, minimise the weighted elastic slacks; (2) maximise growth with the
    slacks held at their minimum; (3) hold growth at its maximum and minimise the total split
    flux sum(v+ + v-); (4) with ``tie_break="l2"``, among the optima of (3) take the one of minimum
    Euclidean norm, so that the solution is unique and continuous in the inputs. Each field is
    documented where it is declared.
    """

    error: ClassVar[type] = SettingsError

    inputs: tuple[tuple[str, str], ...] = setting(
        DEFAULT_INPUTS,
        min_items=1,
        doc=(
            "Named uptake inputs, (name, exchange reaction id) pairs in input order; a mapping {name: reaction_id} "
            "is accepted and stored as pairs. Each input is an uptake rate in mmol/gDW/h (a non-negative number) "
            "fixed as an equality: exchange flux = -input; the exchange reaction's own bounds in the model are "
            "replaced by this equality."
        ),
    )
    maintenance_id: str | None = setting(
        "ATPM",
        doc=(
            "Non-growth-associated maintenance reaction whose lower bound (mmol ATP/gDW/h, taken from the model) "
            "is relaxed by an elastic slack; None for no maintenance slack."
        ),
    )
    relax: bool = setting(
        True,
        doc=(
            "Elastic slacks on the uptake equalities and the maintenance lower bound, minimised first. False: an "
            'infeasible point is reported with status "infeasible" (NaN fluxes).'
        ),
    )
    uptake_shortfall_weight: float = setting(
        1.0,
        low=0.0,
        strict=True,
        doc=(
            "Weight per mmol/gDW/h of uptake below the given input (the cell cannot use all it is offered; the "
            "shortfall is bounded by the input itself, so uptake never turns into secretion)."
        ),
    )
    uptake_excess_weight: float = setting(
        1000.0,
        low=0.0,
        strict=True,
        doc=(
            "Weight per mmol/gDW/h of uptake above the given input (creating substrate). Kept much larger than "
            "the maintenance weight so that the relaxation never invents substrate to pay for maintenance; fluxes "
            "then go to zero as the uptakes go to zero."
        ),
    )
    maintenance_weight: float = setting(1.0, low=0.0, strict=True, doc=("Weight per mmol ATP/gDW/h of maintenance demand left unmet."))
    growth_tolerance: float = setting(
        1e-9, **_TOL, doc=("Relative tolerance when growth is held at its optimum z* in stage (3): growth >= z* - growth_tolerance * |z*|.")
    )
    slack_tolerance: float = setting(
        1e-9,
        **_TOL,
        doc=(
            "Weighted slack sum (in weight x mmol/gDW/h) at or below which a relaxed solve still counts as "
            '"optimal"; also the relative and absolute allowance on the slack budget in (2)-(3).'
        ),
    )
    tie_break: str = setting(
        "none",
        choices=TIE_BREAKS,
        doc=(
            'Stage (4). "l2": the minimum-norm point ||(v+, v-, slacks)||_2 of the optimal face of (3) (with '
            "growth and total split flux at their optima), a strictly convex QP solved with HiGHS on the face's few "
            'free directions; unique, hence a continuous function of the inputs. "none" (default): the vertex '
            "returned by the simplex solve of (3); where (3) has alternative optima (e.g. the transhydrogenases, "
            'NADH16pp/NADH17pp, DHORD2/DHORD5) that vertex can switch between neighbouring inputs. "l2" costs '
            "about twice the time per point; its minimum-norm split between equal-cost routes can add steep ramps "
            "of its own (see docs/surrogate.md)."
        ),
    )
    face_tolerance: float = setting(
        1e-9,
        **_TOL,
        doc=(
            "Reduced costs (mmol/gDW/h per unit, the costs of (3) being 1 per unit of split flux) at or below this "
            "are taken as zero when the optimal face of (3) is identified in stage (4); moving along the face "
            "changes the total split flux by at most this times the step."
        ),
    )

    def _check(self) -> None:
        for k, label in ((0, "input names"), (1, "input reaction ids")):
            seq = [p[k] for p in self.inputs]
            dup = sorted({x for x in seq if seq.count(x) > 1})
            if dup:
                raise self.invalid("inputs", f"pairs without duplicate {label}", dup)
        if self.maintenance_id is not None and self.maintenance_id in self.input_reactions:
            raise self.invalid("maintenance_id", "a reaction other than the input reactions", self.maintenance_id)

    # ------------------------------------------------------------------ views
    @property
    def input_names(self) -> tuple[str, ...]:
        """Input names in order (e.g. ``("glucose", "oxygen")``)."""
        return tuple(p[0] for p in self.inputs)

    @property
    def input_reactions(self) -> tuple[str, ...]:
        """Exchange reaction id of each input, in input order."""
        return tuple(p[1] for p in self.inputs)
