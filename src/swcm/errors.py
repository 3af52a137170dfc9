"""The errors a user can cause. `swcm` prints their one line and exits 2; every other exception is a bug in swcm and
shows its traceback. Each subclasses ValueError too, so library callers may catch that."""

from __future__ import annotations

import signal
from pathlib import Path


class SWCMError(Exception):
    """A mistake in what the user gave swcm: its message says what and where (file:line, field or flag)."""


class RecipeError(SWCMError, ValueError):
    """A setting (recipe field, command-line argument, build option) of the wrong type, out of range or unknown."""


class DataError(SWCMError, ValueError):
    """Bad data or a bad source description; messages name file:line where there is one."""


class CheckpointError(SWCMError, ValueError):
    """A model, encoder or checkpoint that cannot be used as asked: missing, unreadable, of another architecture,
    or without what the command needs (e.g. a language tag)."""


class StorageError(SWCMError, OSError):
    """What swcm could not write (a full disk, a folder without write permission); the earlier outputs are kept."""


class TrainingInterrupted(Exception):
    """SIGINT / SIGTERM stopped a run after a finished step, with a checkpoint of that step written (not a mistake:
    `swcm` exits 128 + the signal's number)."""

    def __init__(
        self, signum: int, step: int, checkpoint: Path, then: str = "the same command with --resume continues the run"
    ):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint {checkpoint}; {then}")
