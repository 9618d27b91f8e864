"""Connecting to a Dask distributed scheduler: the address checked first, a short time-out, one clear error.

A ``tcp://`` address is first tried with a plain TCP connection, so a port where nothing listens
is refused at once (distributed's client retries a refused connection until its time-out).
"""

from __future__ import annotations

import re
import socket
from typing import Any

from mpc_bio.errors import MpcBioError

__all__ = ["ClusterError", "connect_scheduler", "CONNECT_TIMEOUT_S"]

#: Seconds to wait for a scheduler before giving up (distributed's own default is 30).
CONNECT_TIMEOUT_S = 10.0
_ADDRESS = re.compile(
    r"^(?:(?:tcp|tls|ws|wss|ucx)://)?[A-Za-z0-9_.\-]+:\d{1,5}/?$"  # tcp://host:8786, host:8786
    r"|^(?:tcp|tls)://\[[0-9A-Fa-f:]+\]:\d{1,5}/?$"  # IPv6
    r"|^inproc://\S+$"  # a scheduler in this process (distributed.LocalCluster(processes=False))
)
_TCP = re.compile(r"^(?:tcp://)?(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})/?$")


class ClusterError(MpcBioError):
    """A Dask scheduler address is malformed or the scheduler cannot be reached."""


def connect_scheduler(address: Any, *, timeout_s: float = CONNECT_TIMEOUT_S, option: str = "--scheduler") -> Any:
    """A ``distributed.Client`` connected to ``address`` (returned as is when it already is a Client).

    Parameters
    ----------
    address : str or distributed.Client
        ``tcp://HOST:PORT`` (or ``HOST:PORT``, ``tls://...``).
    timeout_s : float
        Seconds to wait for the scheduler (s).
    option : str
        How the caller names the address in messages.

    Raises
    ------
    ClusterError
        The address is not of the form SCHEME://HOST:PORT, nothing accepts a TCP connection there
        (``tcp://``: refused at once), or no scheduler answers there within ``timeout_s``.
    """
    from dask.distributed import Client

    if isinstance(address, Client):
        return address
    text = str(address).strip()
    if not _ADDRESS.match(text):
        raise ClusterError(f"The {option} address must look like tcp://HOST:PORT; got {text!r}.")
    tcp = _TCP.match(text)
    if tcp and int(tcp["port"]) > 65535:
        raise ClusterError(f"The {option} address {text!r} has port {tcp['port']}; expected a port from 1 to 65535.")
    if tcp:
        try:
            socket.create_connection((tcp["host"].strip("[]"), int(tcp["port"])), timeout=timeout_s).close()
        except (OSError, OverflowError) as exc:  # refused, unknown host, no route, port out of range, time-out
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
            raise ClusterError(
                f"No Dask scheduler answered at {text}: cannot connect ({reason}); start one (`dask scheduler`) or drop "
                f"{option} to use local processes."
            ) from None
    try:
        return Client(text, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"No Dask scheduler answered at {text} within {timeout_s:g} s ({type(exc).__name__}); start one "
            f"(`dask scheduler`) or drop {option} to use local processes."
        ) from None
