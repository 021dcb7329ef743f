"""A worker that dies once, for the FailureConfig test: the fault lives here, in the tests, not
in biggan. The test puts `failing_worker_loop(...)` in place of the launcher's Ray worker entry
point (`biggan.train.launcher.trainer._worker_loop`, which `launch_training` hands to
TorchTrainer); Ray ships the function to every worker of every attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def failing_worker_loop(fail_at: int, marker: str) -> Callable[[dict[str, Any]], None]:
    """The real worker loop, except that rank 0 exits hard (os._exit: no cleanup, no exception,
    like a killed process) when it reports iteration `fail_at`, once: it writes `marker` first,
    and a worker group that Ray restarts finds it and trains on."""

    def worker_loop(loop_config: dict[str, Any]) -> None:  # runs inside a Ray worker
        import os

        from biggan.train.launcher import trainer

        report = trainer.RayTrainContext.report

        def report_or_die(self, metrics: dict[str, Any]) -> None:
            if self.rank == 0 and int(metrics.get("iteration", 0)) >= fail_at and not os.path.exists(marker):
                with open(marker, "w") as handle:
                    handle.write(str(metrics["iteration"]))
                os._exit(17)
            report(self, metrics)

        trainer.RayTrainContext.report = report_or_die  # this worker process only
        trainer._worker_loop(loop_config)

    return worker_loop
