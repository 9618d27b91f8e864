"""The design-stage figures draw titers in g/L (mM x the product's molar mass), as the co-design."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mpc_bio.nomad.sensitivity import SensitivityResult  # noqa: E402
from mpc_bio.nomad.verification import VerificationResult  # noqa: E402
from mpc_bio.plotting.nomad_design import plot_sensitivity_bands, plot_titer_time_courses  # noqa: E402

MW = 137.14  # anthranilate, g/mol
TIMES = np.linspace(0.0, 10.0, 6)


def _verification() -> VerificationResult:
    # 2 strains x 2 models, linear titer courses in mM: strain s, model m rises to 2 (s + 1) (m + 1) mM
    product = np.array([[[(s + 1) * (m + 1) * t / 5.0 for t in TIMES] for m in range(2)] for s in range(2)])
    ones = np.ones_like(product)
    return VerificationResult(
        mode="batch",
        strains=("reference", "d-1 DDPA"),
        model_ids=("model0", "model1"),
        times=TIMES,
        product=product,
        biomass=ones,
        substrate=ones,
        volume=ones,
        product_yield=np.ones((2, 2)),
        success=np.ones((2, 2), bool),
        messages=np.full((2, 2), "", dtype=object),
        product_mw_g_per_mol=MW,
        seconds=0.0,
        n_simulations=4,
    )


def test_titer_time_courses_are_in_grams_per_litre():
    res = _verification()
    fig = plot_titer_time_courses(res)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "product titer [g/L]"
    expected_mM = res.product.mean(axis=1)  # mean over the two models, per strain
    for s, line in enumerate(ax.get_lines()[:2]):
        np.testing.assert_allclose(line.get_ydata(), expected_mM[s] * MW / 1000.0, rtol=1e-12, atol=0)
    # the reference ends at 3 mM (mean of 2 and 4 mM) = 0.41142 g/L
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(0.41142, rel=1e-12, abs=0)
    plt.close(fig)


def _sensitivity() -> SensitivityResult:
    # 1 mode, 2 models, 1 draw: titer t / 2 mM in model 0 and t mM in model 1
    product = np.array([[[[t / 2.0 for t in TIMES]], [[t for t in TIMES]]]])
    return SensitivityResult(
        design="d-1 DDPA",
        enzymes=("DDPA",),
        mean_fold=np.array([2.0]),
        modes=("all",),
        model_ids=("model0", "model1"),
        folds=np.full((1, 2, 1, 1), 2.0),
        times=TIMES,
        product=product,
        reference_titer=np.array([4.0, 6.0]),
        nominal_titer=np.array([5.0, 10.0]),
        success=np.ones((1, 2, 1), bool),
        seconds=0.0,
    )


def test_sensitivity_bands_are_in_grams_per_litre():
    res = _sensitivity()
    fig = plot_sensitivity_bands(res, product_mw_g_per_mol=MW)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "product titer [g/L]"
    mean, ref = ax.get_lines()[0], ax.get_lines()[1]
    np.testing.assert_allclose(mean.get_ydata(), 0.75 * TIMES * MW / 1000.0, rtol=1e-12, atol=0)
    assert ref.get_ydata()[0] == pytest.approx(5.0 * MW / 1000.0, rel=1e-12, abs=0)  # mean reference 5 mM
    plt.close(fig)


def test_sensitivity_bands_need_a_molar_mass():
    with pytest.raises(ValueError, match="product_mw_g_per_mol"):
        plot_sensitivity_bands(_sensitivity())
