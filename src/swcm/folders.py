"""Output folders: swcm replaces only what it wrote there, and one run at a time writes into one.

- `set_aside` / `restore_set_aside`: --overwrite moves the earlier outputs aside until the new run or command has
  started (or finished), and puts them back if it fails: a mistake never costs the earlier result;
- `own_model_files`: what of a model folder swcm wrote (paths.check_model_out lets --overwrite replace only that);
- `hold_run_folder`: a training run's lock on its folder;
- `write_atomically` / `write_output`: a file is replaced whole or not at all (the package's one atomic write).
Light: no torch.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError, StorageError

SET_ASIDE = ".swcm-overwritten"
"""Where --overwrite keeps the earlier outputs until the new ones exist."""


def set_aside(out: Path, names) -> Path | None:
    """--overwrite: move the entries of `out` named in `names` (nothing else of the folder) into out/.swcm-overwritten,
    to be deleted once the new run has started or put back if it fails (`restore_set_aside`)."""
    present = [out / name for name in names if (out / name).exists()]
    if not present:
        return None
    aside = out / SET_ASIDE
    shutil.rmtree(aside, ignore_errors=True)  # one left by a run that died between the two steps
    aside.mkdir()
    for path in present:
        os.replace(path, aside / path.name)
    return aside


def restore_set_aside(aside: Path, out: Path) -> None:
    for path in aside.iterdir():
        target = out / path.name
        if target.is_dir():
            shutil.rmtree(target)  # what the failed start wrote (a pruned encoder, an index, a half-saved model)
        elif target.exists():
            target.unlink()
        os.replace(path, target)
    aside.rmdir()


TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json")
"""A model or encoder folder needs one of these to be read: without them transformers falls back to a tokenizer of a
handful of special tokens (tokenizer_config.json alone does not make one)."""

MODEL_FILES = (
    *TOKENIZER_FILES,
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "build.json",
    "swcm_card.json",
    "swcm-extensions.json",
    "swcm-inputs.txt",
)
"""What swcm writes into a model folder (README.md too, where swcm_card.json says the card is swcm's)."""


def own_model_files(out: Path) -> tuple[list[str], list[str]]:
    """(swcm's model files, anything else) in a folder."""
    present = sorted(p.name for p in out.iterdir())
    own = set(MODEL_FILES) | ({"README.md"} if "swcm_card.json" in present else set())
    own |= {n for n in present if n.startswith("model-") and n.endswith(".safetensors")}  # shards
    return [n for n in present if n in own], [n for n in present if n not in own]


@contextmanager
def replacing_model(out: Path, overwrite: bool):
    """Around a command that writes a model into `out` (after check_model_out): with --overwrite the earlier model
    is set aside, deleted when the command succeeds and put back when it fails."""
    aside = set_aside(out, own_model_files(out)[0]) if overwrite and out.is_dir() else None
    try:
        yield
    except BaseException:
        if aside is not None:
            restore_set_aside(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside)


LOCK = ".swcm-lock"
"""A running run's claim on its out folder: `PID HOST`."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextmanager
def hold_run_folder(out: Path):
    """One run at a time in a folder: the main process writes out/.swcm-lock (its pid and host) or refuses when a
    live run holds it; a lock whose process is gone (same host) is taken over with a warning. Yields whether this
    run created the folder; a created folder left empty by a failed run is removed."""
    if int(os.environ.get("RANK", "0")) != 0:  # the launcher's other ranks: the main process holds it
        yield False
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock, me = out / LOCK, f"{os.getpid()} {socket.gethostname()}"
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid, _, host = lock.read_text(encoding="utf-8", errors="replace").strip().partition(" ")
            if host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid)):
                warnings.warn(f"{out}: taking over the lock of run {pid}, which is no longer running", stacklevel=3)
                lock.unlink(missing_ok=True)
                continue
            raise DataError(
                f"{out} is in use by another swcm run (process {pid or '?'} on {host or '?'}); wait for it or choose "
                f"another out (a lock left by a machine that crashed: delete {lock})"
            ) from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(me + "\n")
        break
    succeeded = False
    try:
        yield created
        succeeded = True
    finally:
        if lock.is_file() and lock.read_text(encoding="utf-8", errors="replace").strip() == me:
            lock.unlink()
        if created and not succeeded and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file beside `path` (unique to this call) and a rename: a reader, or a second
    process writing the same file, sees the old file or a new one whole, never half; a failed write (disk full)
    leaves the old one."""
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def write_output(path: Path, text: str, flag: str) -> None:
    """An output file the user named: a regular file (or a symlink to one) is replaced atomically; a device or a
    pipe (/dev/stdout, /dev/full, >(...)) is written to as it is. A failure is one line naming the path."""
    try:
        target = path.resolve(strict=False)
        kind = os.stat(target).st_mode if target.exists() else stat.S_IFREG
        if stat.S_ISREG(kind):
            write_atomically(target, text)
        else:
            with open(target, "w", encoding="utf-8") as file:
                file.write(text)
    except OSError as err:
        raise StorageError(f"{flag} {path}: could not write it ({err.strerror or err}); nothing was saved") from None
