"""A random-weight surrogate with the real :class:`~mpc_bio.surrogate.Surrogate` class.

Random float64 weights are a legitimate reference for the embedding: torch (autograd) is the
independent implementation the CasADi graphs are compared with.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mpc_bio.surrogate import SurrogateModule, SurrogateSettings
from mpc_bio.surrogate.artifact import Surrogate


def random_surrogate(hidden=(32, 32), activation="silu", n_out=7, seed=0, mass_balance=False, k=2, warp=False, kinks=0) -> Surrogate:
    """A surrogate with random weights, scalings and final affine map (k inputs -> n_out fluxes);
    ``warp`` adds the input warp features asinh(x / knee) with random knees, offsets and scales;
    ``kinks`` adds that many kink bumps on random lines through the domain (sharp width 0.05)."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    mod = SurrogateModule(k, tuple(hidden), n_out, n_out, activation, warp=warp, n_kinks=kinks).double()
    with torch.no_grad():
        for p in mod.core.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
        mod.x_offset.copy_(torch.as_tensor(rng.uniform(5, 10, k)))
        mod.x_scale.copy_(torch.as_tensor(rng.uniform(5, 10, k)))
        if warp:
            mod.warp_knee.copy_(torch.as_tensor(rng.uniform(0.1, 1.0, k)))
            mod.warp_offset.copy_(torch.as_tensor(rng.uniform(1.0, 3.0, k)))
            mod.warp_scale.copy_(torch.as_tensor(rng.uniform(1.0, 3.0, k)))
        if kinks:
            normal = rng.normal(size=(kinks, k))
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            mod.kink_matrix.copy_(torch.as_tensor(normal / 0.05))
            mod.kink_bias.copy_(torch.as_tensor(normal @ rng.uniform(2, 18, k) / 0.05))
            mod.kink_ratio.copy_(torch.as_tensor(rng.uniform(0.05, 0.5, kinks)))
            mod.kink_scale.copy_(torch.as_tensor(rng.uniform(0.5, 3, kinks)))
        mod.y_offset.copy_(torch.as_tensor(rng.normal(0, 1, n_out)))
        mod.y_scale.copy_(torch.as_tensor(rng.uniform(0.5, 3, n_out)))
        M = np.eye(n_out) + (0.1 * rng.normal(size=(n_out, n_out)) if mass_balance else 0)
        mod.out_matrix.copy_(torch.as_tensor(M))
        if mass_balance:
            mod.in_matrix.copy_(torch.as_tensor(rng.normal(size=(n_out, k))))
            mod.out_bias.copy_(torch.as_tensor(rng.normal(size=n_out)))
    ids = ("BIOMASS",) + tuple(f"EX_in{j}" for j in range(k)) + tuple(f"R{i}" for i in range(n_out - k - 1))
    import dataclasses

    spec_field = "mlp" if "mlp" in {f.name for f in dataclasses.fields(Surrogate)} else "spec"
    return Surrogate(
        **{spec_field: mod.to_spec()},
        input_names=tuple(f"in{j}" for j in range(k)),
        input_reactions=tuple(f"EX_in{j}" for j in range(k)),
        reaction_ids=ids,
        objective_id="BIOMASS",
        domain_low=np.zeros(k),
        domain_high=np.full(k, 20.0),
        training_data_hash="random",
        settings=SurrogateSettings(hidden=tuple(hidden), activation=activation),
        stoichiometry=sp.csr_matrix((1, n_out)),
        model_id="random",
    )


@pytest.fixture(scope="session")
def rand_sur():
    return random_surrogate()


def torch_value_and_jacobian(sur, x):
    """Float64 torch reference: fluxes (r,) and d fluxes / d x (r, k) by autograd."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    f = lambda u: sur.module(u[None, :])[0]  # noqa: E731
    with torch.no_grad():
        v = f(xt).numpy()
    J = torch.func.jacrev(f)(xt).numpy()
    return v, J
