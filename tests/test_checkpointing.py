"""Checkpoints exist whole or not at all; one that cannot be written (a full disk) is one line and keeps the last."""

from pathlib import Path

import pytest

from swcm.checkpointing import checkpoints, latest_good_checkpoint, save_checkpoint, verify_checkpoint
from swcm.errors import StorageError


class OneProcess:
    """What save_checkpoint asks of accelerate's Accelerator, for one process (a real one is a process-wide
    singleton whose settings later in-process runs could not change)."""

    is_main_process = True

    def wait_for_everyone(self) -> None:
        pass

    def save_state(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.safetensors").write_bytes(b"weights")


def test_a_checkpoint_the_disk_cannot_hold_is_one_line_and_the_last_one_stays(tmp_path, monkeypatch):
    accelerator = OneProcess()
    folder = tmp_path / "checkpoints"
    first = save_checkpoint(accelerator, folder, 1, {"step": 1}, keep=2)
    assert verify_checkpoint(first) is None

    def disk_full(path, **kwargs):  # what torch's zip writer raises when the disk fills mid-file
        (tmp_path / "checkpoints" / ".tmp-step-00000002").mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / ".tmp-step-00000002" / "model.safetensors").write_bytes(b"\0" * 10)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1024 vs 977")

    monkeypatch.setattr(accelerator, "save_state", disk_full)
    with pytest.raises(StorageError, match=r"could not save the checkpoint of step 2 in .*unexpected pos.*"):
        save_checkpoint(accelerator, folder, 2, {"step": 2}, keep=2)
    with pytest.raises(StorageError, match="step-00000001 is kept; --resume continues from it"):
        save_checkpoint(accelerator, folder, 2, {"step": 2}, keep=2)
    assert checkpoints(folder) == [first] and sorted(p.name for p in folder.iterdir()) == ["step-00000001"]
    assert latest_good_checkpoint(folder) == (first, [])

    def bug(path, **kwargs):  # any other error is swcm's bug and keeps its traceback
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(accelerator, "save_state", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        save_checkpoint(accelerator, folder, 3, {"step": 3}, keep=2)
