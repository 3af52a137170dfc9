"""Which versions of swcm's dependencies an environment installs, and how they compare with the lock.

  python .ci/versions.py floors             pip constraints holding each runtime dependency at pyproject's lower bound
  python .ci/versions.py lock PYTHON        the lock file's text: every distribution installed for PYTHON but swcm
  python .ci/versions.py diff PYTHON NAME   one line: the environment NAME's versions that differ from the lock
  python .ci/versions.py same PYTHON        exit 0 if that environment holds exactly the locked versions, else 1

The standard library only (tomllib: Python 3.11+), so `./run` can call it before any environment exists.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
LOCK_HEADER = """\
# The locked, tested versions: `./run` installs swcm under these constraints (torch first, as the CPU wheel), so a
# fresh machine gets what CI tested. Written by `./run lock` from an environment of the newest versions that
# pyproject.toml allows; `./run test` then tests them. Do not edit by hand.
"""
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def canonical(name: str) -> str:
    """PEP 503's normalised name: `Jinja2`, `jinja2` and `jinja_2` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_floors() -> dict[str, str]:
    """Each runtime dependency's lower bound (`>=X`) from pyproject.toml; one without a bound is an error, since
    then CI could not test the oldest version a user may get."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floors = {}
    for line in project["dependencies"]:
        name, _, spec = REQUIREMENT.match(line).groups()
        bound = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if bound is None:
            raise SystemExit(f"pyproject.toml: dependency {line!r} has no lower bound (>=X) for CI's oldest test")
        floors[canonical(name)] = bound.group(1)
    return floors


def installed(python: str) -> dict[str, str]:
    """Distribution name -> version installed for that interpreter, as pip reports them."""
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {canonical(d["name"]): d["version"] for d in json.loads(out)}


def public(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`: a constraint `==2.13.0` matches the local CPU build and the index's build alike."""
    return version.split("+", 1)[0]


def locked() -> dict[str, str]:
    pins = {}
    for number, line in enumerate(LOCK.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        if not version:
            raise SystemExit(f"{LOCK.name}:{number}: expected NAME==VERSION, got {line!r}")
        pins[canonical(name)] = version.strip()
    return pins


def differences(python: str) -> list[tuple[str, str, str | None]]:
    """(name, installed version, locked version or None) for each distribution that differs from the lock."""
    pins, have = locked(), installed(python)
    return [(n, public(v), pins.get(n)) for n, v in sorted(have.items()) if n != "swcm" and public(v) != pins.get(n)]


def main(argv: list[str]) -> None:
    if argv[:1] == ["floors"] and len(argv) == 1:
        print("\n".join(f"{name}=={version}" for name, version in runtime_floors().items()))
    elif argv[:1] == ["lock"] and len(argv) == 2:
        pins = {name: public(v) for name, v in installed(argv[1]).items() if name != "swcm"}
        print(LOCK_HEADER + "\n".join(f"{name}=={pins[name]}" for name in sorted(pins)))
    elif argv[:1] == ["diff"] and len(argv) == 3:
        changed, floors = differences(argv[1]), runtime_floors()
        direct = [f"{name} {have} (locked {pin or 'none'})" for name, have, pin in changed if name in floors]
        others = f"; {len(changed) - len(direct)} other packages differ" if len(changed) > len(direct) else ""
        print(f"{argv[2]} versions against the lock: {', '.join(direct) or 'no runtime dependency'}{others}")
    elif argv[:1] == ["same"] and len(argv) == 2:
        raise SystemExit(1 if differences(argv[1]) else 0)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
