"""Settings of the split-flux pFBA solve (one frozen, validated dataclass for the stage)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = ["PFBASettings", "SettingsError", "DEFAULT_INPUTS", "TIE_BREAKS"]

#: Tie-break rules among the alternative optima of the total-flux stage (3): ``"l2"`` the point of
#: minimum Euclidean norm of the optimal face (unique, continuous in the inputs), ``"none"`` the
#: simplex vertex HiGHS happens to return (may jump between neighbouring inputs).
TIE_BREAKS = ("l2", "none")

#: Default named uptake inputs: input name -> exchange reaction id (COBRA sign: uptake < 0).
DEFAULT_INPUTS: tuple[tuple[str, str], ...] = (("glucose", "EX_glc__D_e"), ("oxygen", "EX_o2_e"))


class SettingsError(MpcBioError):
    """A settings value has the wrong type or lies outside its allowed range."""


def _positive_finite(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"The {name!r} parameter of PFBASettings must be a positive finite number; got {value!r}."
        ) from None
    if not math.isfinite(x) or x <= 0:
        raise SettingsError(
            f"The {name!r} parameter of PFBASettings must be a positive finite number; got {value!r}."
        )
    return x


@dataclass(frozen=True)
class PFBASettings:
    """How each sample point is solved: named uptakes, relaxation and tolerances.

    The solve is lexicographic (paper 1, Eq. 3-4): (1) if the fixed uptakes and the maintenance
    demand cannot all be met, minimise the weighted elastic slacks; (2) maximise growth with the
    slacks held at their minimum; (3) hold growth at its maximum and minimise the total split
    flux sum(v+ + v-); (4) with ``tie_break="l2"``, among the optima of (3) take the one of minimum
    Euclidean norm, so that the solution is unique and continuous in the inputs.

    Attributes
    ----------
    inputs : tuple of (str, str)
        Named uptake inputs, ``(name, exchange reaction id)`` pairs in input order. A mapping
        ``{name: reaction_id}`` is accepted and stored as pairs. Each input is an uptake rate in
        mmol/gDW/h (a non-negative number) fixed as an equality: exchange flux = -input. The
        exchange reaction's own bounds in the model are replaced by this equality.
    maintenance_id : str or None
        Non-growth-associated maintenance reaction whose lower bound (mmol ATP/gDW/h, taken from
        the model) is relaxed by an elastic slack; ``None`` for no maintenance slack.
    relax : bool
        Elastic slacks on the uptake equalities and the maintenance lower bound, minimised
        first. ``False``: an infeasible point is reported with status ``"infeasible"`` (NaN fluxes).
    uptake_shortfall_weight : float
        Weight per mmol/gDW/h of uptake below the given input (the cell cannot use all it is
        offered; the shortfall is bounded by the input itself, so uptake never turns into secretion).
    uptake_excess_weight : float
        Weight per mmol/gDW/h of uptake above the given input (creating substrate). Kept much
        larger than the maintenance weight so that the relaxation never invents substrate to
        pay for maintenance; fluxes then go to zero as the uptakes go to zero.
    maintenance_weight : float
        Weight per mmol ATP/gDW/h of maintenance demand left unmet.
    growth_tolerance : float
        Relative tolerance (dimensionless) when growth is held at its optimum z* in stage (3):
        growth >= z* - growth_tolerance * |z*|.
    slack_tolerance : float
        Weighted slack sum (in weight x mmol/gDW/h) at or below which a relaxed solve still counts
        as ``"optimal"``; also the relative and absolute allowance on the slack budget in (2)-(3).
    tie_break : {"l2", "none"}
        Stage (4). ``"l2"``: the minimum-norm point ||(v+, v-, slacks)||_2 of the optimal face of (3)
        (with growth and total split flux at their optima), a strictly convex QP solved with HiGHS
        on the face's few free directions; unique, hence a continuous function of the inputs.
        ``"none"`` (default): the vertex returned by the simplex solve of (3); where (3) has
        alternative optima (e.g. the transhydrogenases, NADH16pp/NADH17pp, DHORD2/DHORD5) that
        vertex can switch between neighbouring inputs. ``"l2"`` costs about 2x the time per point
        (full 0.1 grids with 2 workers on a quiet 2-core machine: iCH360 17.0 s -> 35.5 s,
        e_coli_core 6.0 s -> 10.5 s) and helped the iCH360 surrogate but not the e_coli_core one
        (its minimum-norm split between equal-cost routes, e.g. GLUSy+GLNS vs GLUDy, adds steep
        ramps of its own; see the README's Surrogate section).
    face_tolerance : float
        Reduced costs (mmol/gDW/h per unit, the costs of (3) being 1 per unit of split flux) at or
        below this are taken as zero when the optimal face of (3) is identified in stage (4);
        moving along the face changes the total split flux by at most this times the step.
    """

    inputs: tuple[tuple[str, str], ...] = DEFAULT_INPUTS
    maintenance_id: str | None = "ATPM"
    relax: bool = True
    uptake_shortfall_weight: float = 1.0
    uptake_excess_weight: float = 1000.0
    maintenance_weight: float = 1.0
    growth_tolerance: float = 1e-9
    slack_tolerance: float = 1e-9
    tie_break: str = "none"
    face_tolerance: float = 1e-9

    def __post_init__(self) -> None:
        pairs = self.inputs
        if isinstance(pairs, Mapping):
            pairs = tuple(pairs.items())
        try:
            pairs = tuple((p[0], p[1]) for p in pairs)
        except (TypeError, IndexError, KeyError):
            raise SettingsError(
                "The 'inputs' parameter of PFBASettings must be a mapping {name: exchange reaction id} "
                f"or a sequence of (name, reaction id) pairs; got {self.inputs!r}."
            ) from None
        if not pairs:
            raise SettingsError("The 'inputs' parameter of PFBASettings must name at least one input; got none.")
        for name, rid in pairs:
            if not isinstance(name, str) or not name or not isinstance(rid, str) or not rid:
                raise SettingsError(
                    "The 'inputs' parameter of PFBASettings must map non-empty string names to non-empty "
                    f"string reaction ids; got {name!r} -> {rid!r}."
                )
        names = [p[0] for p in pairs]
        rids = [p[1] for p in pairs]
        for label, seq in (("input names", names), ("input reaction ids", rids)):
            dup = sorted({x for x in seq if seq.count(x) > 1})
            if dup:
                raise SettingsError(f"The 'inputs' parameter of PFBASettings has duplicate {label}: {dup}.")
        object.__setattr__(self, "inputs", pairs)
        if self.maintenance_id is not None and (not isinstance(self.maintenance_id, str) or not self.maintenance_id):
            raise SettingsError(
                "The 'maintenance_id' parameter of PFBASettings must be a reaction id (str) or None; "
                f"got {self.maintenance_id!r}."
            )
        if self.maintenance_id is not None and self.maintenance_id in rids:
            raise SettingsError(
                f"The 'maintenance_id' parameter of PFBASettings ({self.maintenance_id!r}) must not be "
                "one of the input reactions."
            )
        if not isinstance(self.relax, bool):
            raise SettingsError(f"The 'relax' parameter of PFBASettings must be a bool; got {self.relax!r}.")
        for name in ("uptake_shortfall_weight", "uptake_excess_weight", "maintenance_weight"):
            object.__setattr__(self, name, _positive_finite(name, getattr(self, name)))
        if self.tie_break not in TIE_BREAKS:
            raise SettingsError(
                f"The 'tie_break' parameter of PFBASettings must be one of {list(TIE_BREAKS)}; got {self.tie_break!r}."
            )
        for name in ("growth_tolerance", "slack_tolerance", "face_tolerance"):
            x = _positive_finite(name, getattr(self, name))
            if x >= 1e-3:
                raise SettingsError(
                    f"The {name!r} parameter of PFBASettings must be a small positive number (< 1e-3); got {x!r}."
                )
            object.__setattr__(self, name, x)

    # ------------------------------------------------------------------ views
    @property
    def input_names(self) -> tuple[str, ...]:
        """Input names in order (e.g. ``("glucose", "oxygen")``)."""
        return tuple(p[0] for p in self.inputs)

    @property
    def input_reactions(self) -> tuple[str, ...]:
        """Exchange reaction id of each input, in input order."""
        return tuple(p[1] for p in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        """Json-serialisable form (inputs as a mapping); :meth:`from_dict` inverts it."""
        d = asdict(self)
        d["inputs"] = dict(self.inputs)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PFBASettings":
        """Build settings from :meth:`to_dict` output (unknown keys raise)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"Unknown PFBASettings keys {unknown}; expected some of {sorted(known)}.")
        return cls(**dict(data))
