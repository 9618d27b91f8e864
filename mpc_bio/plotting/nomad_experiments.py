"""Figures of the NOMAD paper's experiments: closeness groups (Fig. 3), experimental strains
against the top designs (Fig. 5), expression robustness (Fig. 7).

Each function draws numbers computed by the result objects (bands, titers) or their summaries
and returns the Figure; titers in g/L.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from mpc_bio.plotting.nomad_design import _g_per_mmol, plot_titer_time_courses

__all__ = [
    "plot_closeness_time_courses",
    "plot_closeness_groups",
    "plot_strain_titers",
    "plot_strain_time_courses",
    "plot_robustness_fractions",
]


def plot_closeness_time_courses(verification, groups: dict):
    """Mean titer and biomass over the models vs time per design group, as in the paper's Fig. 3.

    Parameters
    ----------
    verification : mpc_bio.nomad.verification.VerificationResult
        The closeness study's batch verification.
    groups : dict of str to list of str
        Group name -> strain labels (the reference is drawn black).
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    g_per_mmol = _g_per_mmol(verification.product_mw_g_per_mol)
    colors = plt.get_cmap("viridis")
    valid = verification.valid
    n = len(verification.model_ids)
    order = [("reference", ["reference"])] + list(groups.items())
    for quantity, ax, scale, ylabel in (
        ("product", axes[0], g_per_mmol, "anthranilate [g/L]"),
        ("biomass", axes[1], 1.0, "biomass [gDW/L]"),
        ("substrate", axes[2], 1.0, "glucose [mM]"),
    ):
        mean, lo, hi = verification.bands(quantity)
        for k, (name, labels) in enumerate(order):
            for label in labels:
                s = verification.strains.index(label)
                if name == "reference":
                    style = {"color": "k", "lw": 2}
                elif name == "MCA":
                    style = {"color": "tab:red", "lw": 1.5, "ls": "--"}
                else:
                    style = {"color": colors(k / max(len(order), 2)), "lw": 1.5}
                ax.plot(verification.times, scale * mean[s], label=f"{label} (viable {int(valid[s].sum())}/{n})", **style)
                ax.fill_between(verification.times, scale * lo[s], scale * hi[s], color=style["color"], alpha=0.08)
        t_read = verification.readout_times
        if t_read is not None and len(t_read):
            ax.axvline(float(np.mean(t_read)), color="0.5", ls=":", lw=1)
        ax.set_xlabel("time [h]")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=6, loc="upper left")
    axes[0].set_title("mean over models (band 10-90 %), dotted: reference end", fontsize=8)
    fig.tight_layout()
    return fig


def plot_closeness_groups(summary: dict):
    """Per group: mean titer at the reference end (under the viability rule and as simulated),
    mean time to glucose exhaustion and viable strains, from :meth:`ClosenessStudy.summary`."""
    groups = summary["groups"]
    names = list(groups)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(names))
    rule = [groups[g]["mean_titer_g_per_l"] or 0.0 for g in names]
    sim = [groups[g]["mean_titer_g_per_l_as_simulated"] or 0.0 for g in names]
    axes[0].bar(x - 0.2, rule, 0.4, label="non-viable as 0")
    axes[0].bar(x + 0.2, sim, 0.4, label="as simulated")
    axes[0].axhline(summary["reference"]["mean_titer_g_per_l"], color="k", ls=":", label="reference")
    axes[0].set_xticks(x, [f"{g}\n({groups[g]['n_viable']}/{groups[g]['n_strains']} viable)" for g in names], fontsize=7)
    axes[0].set_ylabel("mean titer at reference end [g/L]")
    axes[0].legend(fontsize=7)
    t_ex = [groups[g]["mean_exhaustion_time_h"] or np.nan for g in names]
    axes[1].bar(x, t_ex, 0.5, color="tab:gray")
    ref_t = summary["reference"]["mean_exhaustion_time_h"]
    if ref_t is not None:
        axes[1].axhline(ref_t, color="k", ls=":", label="reference")
    for k, g in enumerate(names):
        if groups[g]["n_not_exhausted"]:
            axes[1].text(k, 0, f"{groups[g]['n_not_exhausted']} not\nexhausted", ha="center", va="bottom", fontsize=6)
    axes[1].set_xticks(x, names, fontsize=7)
    axes[1].set_ylabel("mean time to glucose exhaustion [h]")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_strain_titers(titers: dict, titers_as_simulated: dict, paper: dict | None = None):
    """Titer at the reference end per strain over the models (box, g/L), as in the paper's Fig. 5.

    Parameters
    ----------
    titers, titers_as_simulated : dict of str to ndarray
        Per strain the titers (g/L), non-viable as zero and as simulated
        (:meth:`StrainComparison.titers_g_per_l`).
    paper : dict of str to float, optional
        The paper's median titers (g/L), drawn as red marks where the label matches.
    """
    labels = list(titers)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) + 2), 4.5))
    x = np.arange(len(labels))
    data = [np.asarray(titers[k], dtype=float) for k in labels]
    ax.boxplot([d[np.isfinite(d)] for d in data], positions=x - 0.18, widths=0.3, showfliers=True)
    sim = [np.asarray(titers_as_simulated[k], dtype=float) for k in labels]
    for k, d in enumerate(sim):
        d = d[np.isfinite(d)]
        ax.plot(np.full(d.size, x[k] + 0.18), d, ".", color="tab:blue", ms=4, label="as simulated" if k == 0 else None)
    if paper:
        for k, label in enumerate(labels):
            if label in paper:
                ax.plot(x[k], paper[label], "r_", ms=18, mew=2, label="paper median" if label == "reference" else None)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("titer at reference end [g/L]")
    ax.set_title("boxes: non-viable strains as 0; dots: as simulated", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_strain_time_courses(verification):
    """Mean titer time courses of the reference, experimental strains and designs."""
    return plot_titer_time_courses(verification)


def plot_robustness_fractions(summary: dict):
    """Per design and mode: fraction of responses above the reference strain, under the
    viability rule and as simulated (:meth:`RobustnessStudy.summary`)."""
    designs = summary["designs"]
    names = list(designs)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        modes = designs[name]["modes"]
        keys = list(modes)
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [modes[k]["fraction_above_reference"] or 0 for k in keys], 0.4, label="rule")
        ax.bar(x + 0.2, [modes[k]["fraction_above_reference_as_simulated"] or 0 for k in keys], 0.4, label="as simulated")
        ax.axhline(summary["robust_fraction"], color="k", ls=":", lw=1)
        ax.set_ylim(0, 1.05)
        ax.set_xticks(x, keys, rotation=45, fontsize=7)
        ax.set_title(name, fontsize=7)
    axes[0][0].set_ylabel("responses above reference")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig
