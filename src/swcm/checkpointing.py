"""A training run's checkpoints: each a folder `step-NNNNNNNN` written under a temporary name, closed by a manifest
of every file's size and SHA-256, fsynced, then renamed into place; the newest one that verifies is the one a
resumed run starts from. A checkpoint that cannot be written (a full disk) is one line, and the previous one stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from accelerate import Accelerator

from .errors import StorageError

MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(folder)): {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    for p in [*files, folder / MANIFEST]:
        _fsync(p)
    _fsync(folder)


def verify_checkpoint(folder: Path) -> str | None:
    """None if the checkpoint is whole, else what is wrong with it."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (interrupted while writing)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "unreadable manifest"
    for name, entry in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            return f"{name} does not match its checksum"
    if TRAINER_STATE not in manifest:
        return f"no {TRAINER_STATE}"
    return None


def checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders, newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)


def latest_good_checkpoint(folder: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that verifies, and a message for each newer one that does not."""
    problems = []
    for candidate in checkpoints(folder):
        problem = verify_checkpoint(candidate)
        if problem is None:
            return candidate, problems
        problems.append(f"checkpoint {candidate} is unusable ({problem}); trying the previous one")
    return None, problems


def save_checkpoint(accelerator: Accelerator, folder: Path, step: int, state: dict, keep: int) -> Path:
    final = folder / f"step-{step:08d}"
    staging = folder / f".tmp-step-{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging))  # model, optimizer, scheduler, RNG of every process
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (staging / TRAINER_STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
            write_manifest(staging)
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not _a_failed_write(err):
            raise
        shutil.rmtree(staging, ignore_errors=True)
        earlier = checkpoints(folder)
        kept = f"{earlier[0].name} is kept; --resume continues from it" if earlier else "no earlier checkpoint"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())[:160]
        raise StorageError(f"could not save the checkpoint of step {step} in {folder} ({reason}); {kept}") from None
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _fsync(folder)
        for old in checkpoints(folder)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _a_failed_write(err: RuntimeError) -> bool:
    """torch's zip writer reports a full disk as a RuntimeError ("unexpected pos", "file write failed")."""
    text = str(err)
    return any(s in text for s in ("unexpected pos", "write failed", "inline_container"))
