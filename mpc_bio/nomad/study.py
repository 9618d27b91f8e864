"""The ensemble study: network -> reference states -> ensemble -> screening -> control coefficients.

``run_ensemble_study`` does the work and returns an :class:`EnsembleStudy`;
``write_ensemble_study`` writes its tables, json summary, arrays and figures to a directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mpc_bio.nomad.ensemble import KineticEnsemble, sample_ensemble
from mpc_bio.nomad.mca import ControlCoefficients, compute_control_coefficients_parallel
from mpc_bio.nomad.network import KineticNetwork, build_network
from mpc_bio.nomad.screening import ScreeningResult, screen_ensemble
from mpc_bio.nomad.settings import EnsembleStudySettings
from mpc_bio.nomad.steady_state import (
    ReferenceStates,
    cofactor_ratios,
    sample_reference_states,
    thermodynamic_data_for,
)

__all__ = ["EnsembleStudy", "run_ensemble_study", "write_ensemble_study"]


@dataclass(frozen=True, eq=False)
class EnsembleStudy:
    """Everything the ensemble stage produced.

    Attributes
    ----------
    settings : EnsembleStudySettings
    network : KineticNetwork
    states : ReferenceStates
    ensemble : KineticEnsemble
        All sampled models.
    screening : ScreeningResult
    control : ControlCoefficients
        Control coefficients of the models passing the last screening stage
        (``control.model_index`` indexes ``ensemble``).
    seconds : dict of str to float
        Wall time per step (s).
    """

    settings: EnsembleStudySettings
    network: KineticNetwork
    states: ReferenceStates
    ensemble: KineticEnsemble
    screening: ScreeningResult
    control: ControlCoefficients
    seconds: dict[str, float] = field(default_factory=dict)

    def state_summary(self) -> dict:
        """How the reference states were sampled, with the cofactor ratios across them (min, median, max)."""
        st = self.states
        out = {
            "method": "tfa" if st.dg0 is not None else "displacement",
            "n_reactions_with_dg0": None if st.dg0 is None else int(np.isfinite(st.dg0[0]).sum()),
            "flux_profiles_sampled": bool(np.asarray(st.fluxes).ndim == 2 and st.n_states > 1 and np.ptp(st.fluxes, axis=0).max() > 0),
        }
        for name, val in cofactor_ratios(self.network, st).items():
            out[name] = [float(np.min(val)), float(np.median(val)), float(np.max(val))]
        return out

    def summary(self) -> dict:
        """JSON-ready summary: sizes, funnel, times, median yield control coefficients."""
        yc = self.control.yield_control()
        med = np.median(yc, axis=0) if yc.shape[0] else np.full(len(self.control.enzyme_ids), np.nan)
        order = np.argsort(-np.abs(np.nan_to_num(med)))[:10]
        return {
            "network": {
                "model_id": self.network.model_id,
                "n_reactions": self.network.n_reactions,
                "n_metabolites": self.network.n_metabolites,
                "n_fixed_metabolites": self.network.n_fixed,
                "n_kinetic_parameters": self.network.n_slots + 2 * self.network.n_reactions,
                "product_reaction": self.network.product_reaction,
                "substrate_reaction": self.network.substrate_reaction,
                "growth_reaction": self.network.growth_reaction,
                "reference_growth_per_h": float(self.network.fluxes[self.network.reaction_index(self.network.growth_reaction)]),
                "reference_product_flux": float(self.network.fluxes[self.network.reaction_index(self.network.product_reaction)]),
                "n_compartments_balanced": len({m.rsplit("_", 1)[-1] for m in self.network.metabolite_ids}),
                "n_transport_reactions": int(
                    sum(
                        len({m.rsplit("_", 1)[-1] for m, c in zip(self.network.species_ids, col) if c != 0}) > 1
                        for col in np.vstack([self.network.stoichiometry, self.network.fixed_stoichiometry]).T
                    )
                ),
                "n_lumped_reactions": len(self.network.lumped_reactions),
                "n_regulation_slots": int(np.sum(np.abs(self.network.slot_role) >= 2)),
                "unapplied_regulations": [list(r) for r in self.network.unapplied_regulations],
            },
            "reference_states": self.state_summary(),
            "n_models": self.ensemble.n_models,
            "n_reference_states": self.states.n_states,
            "doubling_time_h": self.screening.doubling_time,
            "max_time_constant_h": self.screening.max_time_constant,
            "funnel": self.screening.funnel(),
            "n_screened": int(self.screening.survivors.size),
            "seconds": self.seconds,
            "summation_max_error": {
                "flux": float(np.abs(self.control.flux.sum(axis=2) - 1).max()) if yc.shape[0] else None,
                "concentration": float(np.abs(self.control.concentration.sum(axis=2)).max()) if yc.shape[0] else None,
            },
            "top_yield_control_median": {self.control.enzyme_ids[j]: float(med[j]) for j in order},
            "settings": self.settings.to_dict(),
        }


def run_ensemble_study(settings: EnsembleStudySettings | None = None, network: KineticNetwork | None = None, model=None) -> EnsembleStudy:
    """Build the network, sample states and models, screen them and compute control coefficients.

    Parameters
    ----------
    settings : EnsembleStudySettings, optional
    network : KineticNetwork, optional
        Reused instead of building one from ``settings.network``.
    model : cobra.Model, optional
        Source model for the network (never modified); default from ``settings.network.model``.
    """
    settings = settings or EnsembleStudySettings()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if network is None:
        network = build_network(model, settings.network)
    seconds["network"] = time.perf_counter() - t
    t = time.perf_counter()
    ss = settings.steady_state
    thermo = thermodynamic_data_for(network, ss)
    states = sample_reference_states(network, ss, seed=settings.sampling.seed, thermodynamics=thermo)
    seconds["reference_states"] = time.perf_counter() - t
    t = time.perf_counter()
    ensemble = sample_ensemble(network, states, settings.sampling)
    seconds["sampling"] = time.perf_counter() - t
    screening = screen_ensemble(ensemble, settings.screening, settings.executor)
    for s in screening.stages:
        seconds[f"screen_{s.name}"] = s.seconds
    t = time.perf_counter()
    control = compute_control_coefficients_parallel(ensemble, screening.survivors, settings.executor)
    seconds["control_coefficients"] = time.perf_counter() - t
    return EnsembleStudy(settings, network, states, ensemble, screening, control, seconds)


def write_ensemble_study(study: EnsembleStudy, out_dir: str | Path, figures: bool = True) -> Path:
    """Write summary.json, CSV tables, the ensemble, control coefficients and PNG figures.

    Layout: ``summary.json``, ``funnel.csv``, ``models.csv``, ``reference_fluxes.csv``,
    ``reference_concentrations.csv``, ``yield_control.csv``, ``flux_control_median.csv``,
    ``screened_models.json``, ``ensemble/``, ``control_coefficients/``, ``figures/*.png`` (with
    ``cofactor_ratios.png`` when the network holds the cofactors).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net, cc = study.network, study.control
    (out / "summary.json").write_text(json.dumps(study.summary(), indent=2, default=float))
    pd.DataFrame(study.screening.funnel()).to_csv(out / "funnel.csv", index=False)
    study.screening.model_table().to_csv(out / "models.csv", index=False)
    pd.DataFrame({"reaction": net.reaction_ids, "flux_mmol_per_gDW_h": net.fluxes, "rate_law": net.rate_laws}).to_csv(
        out / "reference_fluxes.csv", index=False
    )
    pd.DataFrame(
        study.states.concentrations.T, index=list(net.metabolite_ids), columns=[f"state_{k}" for k in range(study.states.n_states)]
    ).to_csv(out / "reference_concentrations.csv", index_label="metabolite")
    pd.DataFrame(cc.yield_control(), index=cc.model_index, columns=list(cc.enzyme_ids)).to_csv(
        out / "yield_control.csv", index_label="model"
    )
    med = np.median(cc.flux, axis=0) if cc.n_models else np.full((net.n_reactions, net.n_reactions), np.nan)
    pd.DataFrame(med, index=list(cc.reaction_ids), columns=list(cc.enzyme_ids)).to_csv(out / "flux_control_median.csv", index_label="flux")
    (out / "screened_models.json").write_text(json.dumps({name: idx.tolist() for name, idx in study.screening.passed.items()}, indent=1))
    study.ensemble.save(out / "ensemble")
    cc.save(out / "control_coefficients")
    if figures:
        import matplotlib.pyplot as plt

        from mpc_bio.plotting.nomad import (
            plot_cofactor_ratios,
            plot_eigenvalues,
            plot_screening_funnel,
            plot_time_constants,
            plot_yield_control_heatmap,
        )

        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for name, fn, obj in (
            ("eigenvalues", plot_eigenvalues, study.screening),
            ("time_constants", plot_time_constants, study.screening),
            ("screening_funnel", plot_screening_funnel, study.screening),
            ("yield_control_heatmap", plot_yield_control_heatmap, cc),
        ):
            fig = fn(obj)
            fig.savefig(fig_dir / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
        ratios = cofactor_ratios(net, study.states)
        if ratios:
            fig = plot_cofactor_ratios(ratios)
            fig.savefig(fig_dir / "cofactor_ratios.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
    return out
