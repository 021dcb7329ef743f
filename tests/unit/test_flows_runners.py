"""The placement rule of the evaluation nodes (flows/runners.py) without a cluster: which Ray
address wins and how many GPUs a node asks for. tests/integration/test_eval_ray.py runs the same
rule on a real two-node cluster."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.parametrize(("device", "cluster_gpus", "gpus"), [
    ("auto", 4.0, 1.0), ("cuda", 1.0, 1.0), ("cuda:0", 2.0, 1.0), (" CUDA ", 1.0, 1.0),
    ("cpu", 4.0, 0.0), ("auto", 0.0, 0.0), ("cuda", 0.0, 0.0), ("auto", 0.5, 0.0),
])
def test_a_node_asks_for_one_gpu_when_its_device_may_use_one_and_the_cluster_has_one(device, cluster_gpus, gpus):
    from biggan_flows.runners import gpus_per_task

    assert gpus_per_task(device, cluster_gpus) == gpus


def test_the_flow_parameter_wins_over_ray_address_and_nothing_means_threads(monkeypatch):
    from biggan_flows.runners import place_nodes, ray_address_of

    monkeypatch.delitem(sys.modules, "ray", raising=False)  # as in a process that never joined Ray
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address_of("10.0.0.2:6379") == "10.0.0.2:6379"
    assert ray_address_of(None) == ray_address_of("") == "10.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert ray_address_of(None) is None
    threads = place_nodes(None, "auto")
    assert (threads.ray_address, threads.gpus) == (None, 0.0)
    assert threads.describe() == "threads of this process"
