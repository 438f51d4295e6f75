"""`--cluster local:N`: a Ray cluster of N simulated hosts on this machine, for trying a cluster
run out and for tests.

A head node with no CPUs (the driver's, no agent lands there) and N nodes of one CPU each, every
address pinned to 127.0.0.1: Ray otherwise puts the machine's primary address in place of
loopback (and may retry a wrong one for minutes), and stressx never starts a Ray head that
listens off loopback by itself. Usage stats are off. Node health is checked every second, so
a node that dies is declared dead within ~3 s (Ray's default is 15 s or more).
"""
from __future__ import annotations

import os

LOOPBACK = "127.0.0.1"
HEALTH = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
          "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}
NODE_OBJECT_STORE = 100 * 1024 * 1024     # bytes per simulated host (Ray's minimum is ~75 MB)


def quiet_env() -> None:
    """Ray's settings for a cluster on this machine, before Ray is imported: no usage stats,
    and loopback stays loopback (with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray's
    get_node_ip_address() answers 127.0.0.1 instead of the primary address; the nodes get
    node_ip_address=127.0.0.1 and the driver _node_ip_address=127.0.0.1)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def pin_loopback() -> None:
    """The same once Ray is imported (its constant is read when an address is resolved)."""
    quiet_env()
    import ray._private.ray_constants as constants
    constants.ENABLE_RAY_CLUSTER = False


class LocalCluster:
    """A head and `n` one-CPU nodes on 127.0.0.1 (ray.cluster_utils.Cluster); shutdown() ends
    every process it started."""

    def __init__(self, n: int, cpus_per_node: int = 1):
        pin_loopback()
        from ray.cluster_utils import Cluster
        self.cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=0, node_ip_address=LOOPBACK, include_dashboard=False,
            object_store_memory=NODE_OBJECT_STORE, _system_config=dict(HEALTH)))
        self.nodes = [self.add_node(cpus_per_node) for _ in range(n)]

    def add_node(self, cpus: int = 1):
        return self.cluster.add_node(num_cpus=cpus, node_ip_address=LOOPBACK,
                                     object_store_memory=NODE_OBJECT_STORE)

    @property
    def address(self) -> str:
        return self.cluster.address

    @staticmethod
    def init_args() -> dict:
        """ray.init's arguments for a driver on this machine."""
        return {"_node_ip_address": LOOPBACK}

    def shutdown(self) -> None:
        self.cluster.shutdown()
