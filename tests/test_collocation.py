"""The shared Radau IIA element equations against closed forms."""

from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from mpc_bio.collocation import radau_points, radau_residuals


@pytest.mark.parametrize("h", [0.1, 0.5, 2.0])
def test_one_element_on_x_dot_minus_x_is_the_radau_iia_stability_function(h):
    """x' = -x over one element: the end state of degree 1 (implicit Euler) is 1 / (1 + h); of degree 2
    (Radau IIA, order 3) R(-h) = (1 - h/3) / (1 + 2h/3 + h^2/6). Tolerance 1e-12 relative, 0 absolute
    (a linear system solved exactly)."""
    for deg, exact in ((1, 1.0 / (1.0 + h)), (2, (1.0 - h / 3.0) / (1.0 + 2.0 * h / 3.0 + h * h / 6.0))):
        z = ca.SX.sym("z", deg)
        res = ca.vertcat(*radau_residuals(lambda zj, j: -zj, ca.DM(1.0), [z[j] for j in range(deg)], h))
        A = ca.Function("A", [z], [ca.jacobian(res, z)])(np.zeros(deg))
        b = -ca.Function("b", [z], [res])(np.zeros(deg))
        sol = np.linalg.solve(np.asarray(A), np.asarray(b)).ravel()
        assert sol[-1] == pytest.approx(exact, rel=1e-12, abs=0)


def test_radau_points_and_bad_degree():
    """Degree 2: tau = 1/3, 1 (closed form), to 1e-15 absolute; the last point is the element's end."""
    np.testing.assert_allclose(radau_points(2), [1.0 / 3.0, 1.0], rtol=0, atol=1e-15)
    assert radau_points(5)[-1] == pytest.approx(1.0, abs=1e-15, rel=0)
    with pytest.raises(ValueError, match="'deg' parameter of radau_points"):
        radau_points(0)
