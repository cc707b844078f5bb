"""Composer's WandBLogger, made to work with the wandb release pinned here.

Composer 0.32.1 calls ``wandb.run.get_url()`` at init; wandb 0.31 dropped that method (the
``url`` property remains), so the stock logger crashes before the first step. Runs refuse new
attributes, so the subclass below gives wandb's ``Run`` class the missing method, once, as
an alias of ``url``, and otherwise changes nothing.
"""

from __future__ import annotations

from composer.core import State
from composer.loggers import Logger
from composer.loggers import WandBLogger as ComposerWandBLogger


def _run_url(run: object) -> str | None:
    return run.url  # type: ignore[attr-defined]


class WandBLogger(ComposerWandBLogger):
    """W&B logging; runs offline unless the config says online (see builders.build_loggers)."""

    def download_file(self, remote_file_name: str, *args: object, **kwargs: object) -> None:
        raise FileNotFoundError(f"W&B does not hold checkpoints in this project ({remote_file_name})")

    def init(self, state: State, logger: Logger) -> None:
        from wandb.sdk.wandb_run import Run

        if not hasattr(Run, "get_url"):
            Run.get_url = _run_url  # type: ignore[attr-defined]
        super().init(state, logger)
