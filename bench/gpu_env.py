"""A bare GPU machine's missing packages, installed from wheels that travelled with the project.

A GPU machine may have torch, torchvision, lightning and torchmetrics and nothing else, with no
package index in reach. `bash bench/gpu_wheels.sh`, run where an index is, puts the wheels of
everything else goodfit needs into .gpu/wheels (git-ignored). Here, every distribution among
them that this Python lacks, and every requirement of goodfit's that it lacks or has in a
version goodfit does not accept, is installed from that folder alone (`pip install --no-index
--no-deps --target .gpu/site-pyX.Y`), and that folder is put on PYTHONPATH, ahead of the
system's packages but beside them: nothing already there is replaced.

Standard library only: this runs before the packages it installs exist.
`python -m bench.gpu_env` installs and prints the PYTHONPATH to export.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / ".gpu"
# What the GPU tests need beside goodfit's own requirements.
EXTRA_REQUIREMENTS = ("pytest>=8",)


def wheels_dir() -> Path:
    return Path(os.environ.get("GPU_WHEELS") or GPU_DIR / "wheels")


def site_dir() -> Path:
    """The install target, one per Python version (wheels of another version do not fit)."""
    default = GPU_DIR / f"site-py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(os.environ.get("GPU_SITE") or default)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_distributions(folder: Path) -> set[str]:
    """Normalized names of the distributions whose wheels lie in `folder`."""
    return {normalize(p.name.split("-", 1)[0]) for p in folder.glob("*.whl")}


def requirements() -> list[str]:
    """goodfit's requirements (pyproject.toml) and the GPU tests' own."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: only the wheels' own distributions are checked
        return list(EXTRA_REQUIREMENTS)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *EXTRA_REQUIREMENTS]


def _requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def unmet(requirement: str) -> bool:
    """True when the distribution is absent, or present in a version the requirement refuses
    (checked with `packaging`, which lightning brings, when it is there)."""
    name = _requirement_name(requirement)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return True
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return False
    return not Requirement(requirement).specifier.contains(version, prereleases=True)


def installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def to_install(folder: Path) -> tuple[list[str], list[str]]:
    """(what the wheels folder will provide, what nothing provides): every distribution of
    the folder that is absent, and every unmet requirement."""
    have = wheel_distributions(folder) if folder.is_dir() else set()
    wanted = {name for name in have if not installed(name)}
    lacking = []
    for requirement in requirements():
        name = _requirement_name(requirement)
        if unmet(requirement) and name in have:
            wanted.add(name)
        elif unmet(requirement):
            lacking.append(requirement)
    return sorted(wanted), lacking


def activate(target: Path) -> None:
    """Put goodfit's sources and `target` on this process's path and on PYTHONPATH (which
    every process it starts inherits)."""
    entries = [str(ROOT / "src"), str(target)]
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([*entries, *(p for p in old if p not in entries)])
    importlib.invalidate_caches()


def install(names: list[str], folder: Path, target: Path) -> None:
    """`pip install --no-index --no-deps` of `names` from `folder` into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
           "--disable-pip-version-check", "--find-links", str(folder), "--target", str(target),
           *names]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"Installing {', '.join(names)} from {folder} failed:\n"
                         f"{result.stdout[-2000:]}{result.stderr[-2000:]}")  # fmt: skip
    importlib.invalidate_caches()


def prepare() -> list[str]:
    """Make goodfit's requirements importable; the distributions installed for it. Exits with
    a message naming what is missing when the wheels folder cannot provide it."""
    folder, target = wheels_dir(), site_dir()
    activate(target)
    names, lacking = to_install(folder)
    if lacking:
        raise SystemExit(
            f"Missing, and no wheel in {folder}: {', '.join(lacking)}. On a machine with a "
            "package index, run `bash bench/gpu_wheels.sh` (see docs/performance.md) and bring "
            f"{folder} along."
        )
    if names:
        print(f"Installing from {folder} into {target}: {', '.join(names)}", flush=True)
        install(names, folder, target)
        still, lacking = to_install(folder)
        if still or lacking:
            raise SystemExit(f"Still missing after installing: {', '.join(still + lacking)}")
    return names


if __name__ == "__main__":
    done = prepare()
    print(f"Installed: {', '.join(done) or 'nothing (all present)'}", file=sys.stderr)
    print(f"export PYTHONPATH={os.environ['PYTHONPATH']}")
