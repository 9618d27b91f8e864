"""A numeric (numpy) function of one vector as a CasADi function with a numeric Jacobian.

CasADi calls Python back for the value and, when a solver needs derivatives, for the Jacobian
of the value at a point, given the value there (so finite differences need no extra nominal
evaluation). Used where the function has no CasADi expression: a surrogate network evaluated
by numpy/BLAS in batches, a CVODES simulation whose forward sensitivities fail.
"""

from __future__ import annotations

from collections.abc import Callable

import casadi as ca
import numpy as np

__all__ = ["NumericFunction"]


class _Dense(ca.Callback):
    """A CasADi callback of dense column inputs of sizes ``sizes_in`` and one dense output of ``shape_out``
    whose value is ``fn(*inputs)`` (numpy vectors in, a numpy array out); with ``buffered`` the inputs and
    the output are zero-copy views of CasADi's buffers."""

    def __init__(self, name: str, sizes_in: tuple[int, ...], shape_out: tuple[int, int], fn: Callable, buffered: bool) -> None:
        ca.Callback.__init__(self)
        self.sizes_in, self.shape_out, self.fn, self.buffered = sizes_in, shape_out, fn, buffered

    def get_n_in(self):
        return len(self.sizes_in)

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return ca.Sparsity.dense(self.sizes_in[i], 1)

    def get_sparsity_out(self, i):
        return ca.Sparsity.dense(*self.shape_out)

    def eval(self, arg):
        return [self.fn(*(np.asarray(a, dtype=float).reshape(-1) for a in arg))]

    def has_eval_buffer(self):
        return self.buffered

    def eval_buffer(self, arg, res):
        # CasADi's dense output is column-major
        x = [np.frombuffer(a, dtype=np.float64, count=n) for a, n in zip(arg, self.sizes_in)]
        out = np.asarray(self.fn(*x))
        np.frombuffer(res[0], dtype=np.float64, count=out.size)[:] = out.ravel(order="F")
        return 0


class NumericFunction(_Dense):
    """``value(x)`` (n_out,) of ``x`` (n_in,) as a CasADi function of one column; its Jacobian is
    ``jacobian(x, y)`` (n_out, n_in) at ``x`` given ``y = value(x)``.

    Parameters
    ----------
    name : str
        CasADi name of the function (its Jacobian is ``name + "_jac"``).
    n_in, n_out : int
        Input and output sizes.
    value, jacobian : callable
        numpy functions, as above.
    buffered : bool
        Pass CasADi's buffers to both functions as zero-copy views (the conversions of the plain
        callback path cost as much as a small network); off, values pass through CasADi's
        conversions (errors raised in ``value`` reach the caller as in any CasADi evaluation).
    """

    def __init__(self, name: str, n_in: int, n_out: int, value: Callable, jacobian: Callable, *, buffered: bool = True) -> None:
        super().__init__(name, (n_in,), (n_out, 1), value, buffered)
        self._jac = _Dense(f"{name}_jac", (n_in, n_out), (n_out, n_in), jacobian, buffered)
        self._jac.construct(f"{name}_jac", {})
        self.construct(name, {})

    def has_jacobian(self):
        return True

    def get_jacobian(self, name, inames, onames, opts):
        return self._jac
