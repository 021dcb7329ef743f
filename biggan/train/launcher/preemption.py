"""How a Ray Train worker learns that its node is about to be reclaimed (spot / preemptible nodes).

Two signals, read at every step boundary by the loop (biggan.train.elastic.PreemptionWatch), which
checkpoints once per new notice:

- Ray's preemption info (`ray.train.get_preemption_info()`, alpha in Ray 2.60): Ray Train's
  PreemptionWatcher polls Ray Core for nodes being drained (`ray drain-node --reason
  DRAIN_NODE_REASON_PREEMPTION`, which autoscalers send when the cloud announces a reclaim) and
  tells every worker. The call is a barrier (rank 0's answer goes to all), made by every rank at
  every step. Ray then restarts the group on the nodes left when the drained node dies or its
  deadline passes, charging the restart to FailureConfig(max_preemption_failures) =
  cluster.max_preemptions, not to cluster.max_failures.
- SIGTERM, which is how many node shutdowns begin: `install_sigterm_notice` runs in each worker
  actor's main thread (Python signal handlers can only be set there; Ray Train's torch backend
  `on_start` runs there) and turns the first SIGTERM into a notice; a second one does what SIGTERM
  did before (Ray's handler: the worker exits). Ray is not told, so the restart after such a
  node's loss counts against cluster.max_failures.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from biggan.train.launcher.lazy import lazy_classes

log = logging.getLogger("biggan.train.launcher")

SIGTERM_NOTICE = "SIGTERM"
_sigterm = threading.Event()  # set by the first SIGTERM this worker process receives
_previous: list[Any] = []  # the handler SIGTERM had before install_sigterm_notice, once installed


def install_sigterm_notice() -> bool:
    """Turn this process's first SIGTERM into a preemption notice (main thread only; True once installed)."""
    if _previous:
        return True
    if threading.current_thread() is not threading.main_thread():
        log.warning("SIGTERM is not watched in this worker: the handler can only be set from its main thread")
        return False
    _previous.append(signal.getsignal(signal.SIGTERM))
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _on_sigterm(signum: int, frame: Any) -> None:
    if not _sigterm.is_set():
        _sigterm.set()
        log.warning("SIGTERM: this worker's node is going away; the group checkpoints at the next step boundary "
                    "(a second SIGTERM ends the worker)")
        return
    previous = _previous[0] if _previous else signal.SIG_DFL
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, previous)  # SIG_DFL / SIG_IGN: what the process did before
    os.kill(os.getpid(), signal.SIGTERM)


def sigterm_received() -> bool:
    return _sigterm.is_set()


def ray_preemption_notice() -> str | None:
    """Ray's preemption info as a notice (None: no node of the group is being reclaimed). A barrier:
    every rank calls it the same number of times. The text names the nodes and ranks, not the
    deadline, so one drain is one notice however often it is read."""
    import ray.train

    info = ray.train.get_preemption_info()
    if info is None:
        return None
    nodes = ", ".join(node[:12] for node in info.preempted_node_ids)
    return f"Ray drains node {nodes} (ranks {', '.join(map(str, info.preempted_ranks))})"


def _build_ray_classes() -> tuple[type, ...]:
    """TorchConfig / backend that install the SIGTERM notice on every worker (built on first use: lazy.py)."""
    from ray.train.torch import TorchConfig
    from ray.train.torch.config import _TorchBackend  # private, pinned to Ray 2.60 (as local_ray.py's)

    class PreemptibleTorchBackend(_TorchBackend):
        """Ray's torch backend, and a SIGTERM notice in every worker's main thread."""

        def on_start(self, worker_group, backend_config):
            super().on_start(worker_group, backend_config)
            worker_group.execute(install_sigterm_notice)

    class PreemptibleTorchConfig(TorchConfig):
        @property
        def backend_cls(self):
            return PreemptibleTorchBackend

    return PreemptibleTorchBackend, PreemptibleTorchConfig


__getattr__ = lazy_classes(__name__, ("PreemptibleTorchBackend", "PreemptibleTorchConfig"), _build_ray_classes)
