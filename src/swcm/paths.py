"""The paths a user names (a model folder, a file to read, a file or folder to write), checked before any work: what
is wrong and where on one line. A missing path, a file where a folder belongs and the reverse, a symlink loop, a
folder a run left where its model is meant: each is said as such, never a traceback from deep inside a library.
Light: no torch.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from .errors import CheckpointError, DataError, RecipeError
from .folders import TOKENIZER_FILES, own_model_files


def _mode(path: Path, flag: str, error: type = DataError) -> int | None:
    """The path's stat mode, None when nothing is there; a symlink loop is an error."""
    try:
        return os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{flag} {path}: a symlink loop") from None
        if path.is_symlink():
            raise error(f"{flag} {path}: a symlink to nothing ({os.readlink(path)})") from None
        return None


def _run_folder_hint(path: Path) -> str:
    """A run's folder holds its model in final/: say so where a model folder is expected."""
    return f"; a run's model is in {path / 'final'}" if (path / "final" / "config.json").is_file() else ""


def local_model_type(path: str | os.PathLike) -> str | None:
    """The model_type of a local model folder's config.json; None for anything else (a hub id, a missing path)."""
    config = Path(path).expanduser() / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def check_model_dir(model: Path, flag: str = "--model"):
    """The model's config (an XLM-SWCM one). A local folder must exist and hold an XLM-SWCM config.json and its
    tokenizer files; only an `owner/name` that is no local path is left to the hub (a bare name is not looked up
    there: a mistyped folder fails at once instead of after the hub's retries)."""
    from .configuration_swcm import SWCMConfig

    model = Path(model)
    text = str(model)
    looks_local = os.path.lexists(model) or model.is_absolute() or text.startswith((".", "~")) or len(model.parts) != 2
    if not looks_local:
        return SWCMConfig.from_pretrained(model)
    mode = _mode(model, flag, CheckpointError)
    if mode is None:
        raise CheckpointError(f"{flag} {model}: no such model folder")
    if not stat.S_ISDIR(mode):
        raise CheckpointError(f"{flag} {model}: is a file, expected a model folder")
    if not (model / "config.json").is_file():
        raise CheckpointError(f"{flag} {model}: not a model folder (no config.json){_run_folder_hint(model)}")
    try:
        kind = json.loads((model / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        raise CheckpointError(f"{flag} {model}: config.json is not a JSON object") from None
    if kind != SWCMConfig.model_type:
        raise CheckpointError(
            f"{flag} {model}: not an XLM-SWCM model (model_type {kind!r}); `swcm build` makes one from an encoder"
        )
    if not any((model / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{flag} {model}: no tokenizer files ({' / '.join(TOKENIZER_FILES)})")
    return SWCMConfig.from_pretrained(model)


def check_input_file(path: Path, flag: str) -> None:
    """A file to read: it exists and is no folder (a pipe or a device, /dev/stdin or <(...), is read as a file)."""
    mode = _mode(Path(path), flag)
    if mode is None:
        raise DataError(f"{flag} {path}: no such file")
    if stat.S_ISDIR(mode):
        raise DataError(f"{flag} {path}: is a folder, expected a file")


def check_output_path(path: Path, flag: str) -> None:
    """A file to write: its folder exists and can be written, and the path is no folder."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise RecipeError(f"{flag} {path}: folder {folder} does not exist")
    mode = _mode(path, flag, RecipeError)
    if mode is not None and stat.S_ISDIR(mode):
        raise RecipeError(f"{flag} {path}: is a folder, expected a file")
    if not os.access(folder, os.W_OK):
        raise RecipeError(f"{flag} {path}: folder {folder} is not writable")


def check_output_folder(path: Path, flag: str = "--out") -> None:
    """A folder to write into (made when missing): not a file, not a symlink loop or a symlink to nothing."""
    mode = _mode(Path(path), flag, RecipeError)
    if mode is not None and not stat.S_ISDIR(mode):
        raise RecipeError(f"{flag} {path}: is a file, expected a folder")


def check_model_out(out: Path, overwrite: bool, flag: str = "--out") -> None:
    """A model folder is written into a new or empty folder; a used one only with --overwrite, and only where it
    holds nothing but a model swcm wrote. Checked before any model work."""
    check_output_folder(out, flag)
    if not out.is_dir() or not any(out.iterdir()):
        return
    own, foreign = own_model_files(out)
    if not overwrite:
        shown = ", ".join([*own, *foreign][:6]) + (" ..." if len(own) + len(foreign) > 6 else "")
        raise RecipeError(
            f"{flag} {out}: the folder is not empty ({shown}); --overwrite replaces a model swcm wrote there, or "
            "choose another folder"
        )
    if foreign:
        raise RecipeError(
            f"{flag} {out}: --overwrite replaces only a model's own files, and these are not: {', '.join(foreign)}"
        )


__all__ = [
    "check_input_file",
    "check_model_out",
    "check_model_dir",
    "check_output_folder",
    "check_output_path",
    "local_model_type",
]
