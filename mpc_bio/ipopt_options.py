"""The package's one set of IPOPT defaults, for every CasADi ``nlpsol`` it builds.

Quiet (no banner, no iteration log, no timing print), with CasADi's timing recorded in
``solver.stats()``; each caller adds its own options (warm start, Hessian approximation, bound
handling) on top.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ipopt_options"]


def ipopt_options(max_iter: int, tol: float | None = None, **extra: Any) -> dict[str, Any]:
    """IPOPT options for ``casadi.nlpsol``: the package defaults plus ``extra``.

    Parameters
    ----------
    max_iter : int
        IPOPT's iteration limit.
    tol : float, optional
        IPOPT's convergence tolerance (IPOPT's default 1e-8 when None).
    **extra
        Further options, with their CasADi names (``"ipopt.mu_init"``, ``"expand"``, ...); they
        override the defaults.
    """
    opts: dict[str, Any] = {
        "ipopt.max_iter": int(max_iter),
        "ipopt.print_level": 0,
        "ipopt.sb": "yes",
        "print_time": 0,
        "record_time": True,
    }
    if tol is not None:
        opts["ipopt.tol"] = float(tol)
    opts.update(extra)
    return opts
