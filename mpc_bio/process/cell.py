"""The cell model seen by the reactor: a CasADi flux function plus what its inputs and outputs mean."""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

from mpc_bio.process.settings import FedBatchSettings, ProcessSettingsError

__all__ = ["CellFluxModel", "embed_cell_model", "required_outputs"]


@dataclass(frozen=True, eq=False)
class CellFluxModel:
    """A CasADi function from uptake rates to the net fluxes the reactor needs.

    Attributes
    ----------
    function : casadi.Function
        ``f(uptakes[k]) -> fluxes[len(output_ids)]``, mmol/gDW/h (growth in 1/h).
    input_names : tuple of str
        Input order (e.g. ``("glucose", "oxygen")``), uptake rates in mmol/gDW/h.
    input_reactions : tuple of str
        Exchange reaction fixed by each input.
    output_ids : tuple of str
        Reaction id of each output.
    growth_id : str
        Output id of the growth (biomass) reaction.
    domain_low, domain_high : ndarray, shape (k,)
        Box of inputs where the function is valid (the surrogate's training domain), mmol/gDW/h.
    backend : str
        How ``function`` was made (``"native"``, ``"l4casadi"`` or ``"custom"``).
    symbolic : str
        Symbol types the function accepts: ``"SX"`` (SX and MX) or ``"MX"`` (MX only).
    """

    function: ca.Function
    input_names: tuple[str, ...]
    input_reactions: tuple[str, ...]
    output_ids: tuple[str, ...]
    growth_id: str
    domain_low: np.ndarray
    domain_high: np.ndarray
    backend: str = "custom"
    symbolic: str = "SX"

    def __post_init__(self) -> None:
        f = self.function
        k, r = len(self.input_names), len(self.output_ids)
        if not isinstance(f, ca.Function) or f.n_in() != 1 or f.n_out() != 1:
            raise ProcessSettingsError("CellFluxModel.function must be a casadi.Function with one input and one output.")
        if f.size_in(0) != (k, 1) or f.size_out(0) != (r, 1):
            raise ProcessSettingsError(
                f"CellFluxModel.function must map ({k}, 1) uptakes to ({r}, 1) fluxes. "
                f"Got {f.size_in(0)} -> {f.size_out(0)} instead."
            )
        if self.growth_id not in self.output_ids:
            raise ProcessSettingsError(f"The growth reaction {self.growth_id!r} is not among the outputs {list(self.output_ids)}.")
        object.__setattr__(self, "domain_low", np.asarray(self.domain_low, dtype=float).reshape(k))
        object.__setattr__(self, "domain_high", np.asarray(self.domain_high, dtype=float).reshape(k))

    def output_index(self, reaction_id: str) -> int:
        """Position of an output reaction id."""
        try:
            return self.output_ids.index(reaction_id)
        except ValueError:
            raise ProcessSettingsError(
                f"The cell model has no output {reaction_id!r}; its outputs are {list(self.output_ids)}."
            ) from None

    def input_index(self, name: str) -> int:
        """Position of a named input."""
        try:
            return self.input_names.index(name)
        except ValueError:
            raise ProcessSettingsError(
                f"The cell model has no input {name!r}; its inputs are {list(self.input_names)}."
            ) from None

    def in_domain(self, u: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """Flags (n,) that each row of uptakes ``u`` (n, k) lies in the validity box."""
        U = np.atleast_2d(np.asarray(u, dtype=float))
        tol = rtol * (1.0 + np.abs(self.domain_high - self.domain_low))
        return np.all((U >= self.domain_low - tol) & (U <= self.domain_high + tol), axis=1)


def required_outputs(settings: FedBatchSettings, growth_id: str) -> tuple[str, ...]:
    """Output reactions the reactor needs: growth, the glucose and oxygen exchanges, the products."""
    return (growth_id, settings.glucose_exchange, settings.oxygen_exchange, *settings.products.values())


def embed_cell_model(
    surrogate,
    settings: FedBatchSettings,
    backend: str = "native",
    symbolic: str = "SX",
    **to_casadi_options,
) -> CellFluxModel:
    """Embed a surrogate with only the outputs the reactor of ``settings`` needs.

    Parameters
    ----------
    surrogate : mpc_bio.surrogate.Surrogate
        Trained surrogate.
    settings : FedBatchSettings
        Names of the glucose/oxygen inputs and exchanges and of the tracked products.
    backend, symbolic, **to_casadi_options
        Passed to :func:`mpc_bio.embed.to_casadi`.

    Raises
    ------
    ProcessSettingsError
        When the surrogate lacks the glucose or oxygen input, or an exchange the reactor tracks.
    """
    from mpc_bio.embed import to_casadi

    names, rxns = tuple(surrogate.input_names), tuple(surrogate.input_reactions)
    for label, name, rxn in (
        ("glucose", settings.glucose_input, settings.glucose_exchange),
        ("oxygen", settings.oxygen_input, settings.oxygen_exchange),
    ):
        if name not in names:
            raise ProcessSettingsError(
                f"The surrogate has no {label} input {name!r} (its inputs are {list(names)}); set "
                f"'{label}_input' in the reactor settings."
            )
        if rxns[names.index(name)] != rxn:
            raise ProcessSettingsError(
                f"The surrogate's {label} input {name!r} fixes {rxns[names.index(name)]!r}, but the reactor "
                f"settings say '{label}_exchange' = {rxn!r}."
            )
    if len(names) != 2:
        raise ProcessSettingsError(
            f"The fed-batch model drives exactly two surrogate inputs (glucose, oxygen); this surrogate has {list(names)}."
        )
    outs = required_outputs(settings, surrogate.objective_id)
    missing = [o for o in outs if o not in surrogate.reaction_ids]
    if missing:
        raise ProcessSettingsError(
            f"The surrogate does not predict the reaction(s) {missing} that the reactor needs "
            f"(growth, glucose/oxygen exchange, tracked products {dict(settings.products)})."
        )
    fun = to_casadi(surrogate, backend=backend, outputs=outs, symbolic=symbolic, **to_casadi_options)
    return CellFluxModel(
        function=fun,
        input_names=names,
        input_reactions=rxns,
        output_ids=outs,
        growth_id=surrogate.objective_id,
        domain_low=surrogate.domain_low,
        domain_high=surrogate.domain_high,
        backend=backend,
        symbolic="MX" if (backend == "l4casadi" or symbolic == "MX") else "SX",
    )
