"""Connecting to a Dask scheduler by address (mpc_bio.cluster): a refused port is one clear error
at once, a live scheduler on tcp connects."""

from __future__ import annotations

import socket

import pytest

from mpc_bio.cluster import ClusterError, connect_scheduler


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_port_and_bad_port_are_one_clear_error():
    port = _closed_port()
    with pytest.raises(ClusterError, match=rf"No Dask scheduler answered at tcp://127.0.0.1:{port}: cannot connect \(Connection refused\)"):
        connect_scheduler(f"tcp://127.0.0.1:{port}")
    with pytest.raises(ClusterError, match="has port 70000; expected a port from 1 to 65535"):
        connect_scheduler("tcp://127.0.0.1:70000", option="--scheduler")
    with pytest.raises(ClusterError, match="must look like tcp://HOST:PORT"):
        connect_scheduler("notaurl")


def test_live_tcp_scheduler_connects_and_computes():
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        client = connect_scheduler(address)
        try:
            assert client.submit(sum, [1, 2, 3]).result() == 6
        finally:
            client.close()
