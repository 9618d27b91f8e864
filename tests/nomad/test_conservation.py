"""Conserved moieties of the anthranilate network."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_bio.nomad.conservation import analyse_conservation


def test_moieties_and_link_matrix(anthranilate_network):
    net = anthranilate_network
    cons = analyse_conservation(net)
    S = net.stoichiometry
    assert cons.rank == np.linalg.matrix_rank(S)
    assert cons.rank + cons.n_moieties == net.n_metabolites
    np.testing.assert_allclose(cons.moieties @ S, 0.0, atol=1e-12)
    np.testing.assert_allclose(cons.link @ cons.reduced_stoichiometry, S, atol=1e-10)
    names = {frozenset(n.split(" + ")) for n in cons.moiety_names()}
    assert frozenset({"nad_c", "nadh_c"}) in names
    assert frozenset({"nadp_c", "nadph_c"}) in names
    assert frozenset({"atp_c", "adp_c"}) in names


def test_closed_form_two_pools():
    """A <-> B, B <-> A2 with one pool: rank 1, moiety A + B."""
    S = np.array([[-1.0, 1.0], [1.0, -1.0]])
    cons = analyse_conservation(S)
    assert cons.rank == 1 and cons.n_moieties == 1
    g = cons.moieties[0] / cons.moieties[0][0]
    np.testing.assert_allclose(g, [1.0, 1.0], atol=1e-12)
    assert cons.link.shape == (2, 1)
    assert pytest.approx(1.0) == abs(cons.link[cons.independent[0], 0])
