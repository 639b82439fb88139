"""``make dist`` builds every distribution, and the namespace-package recipe holds.

Every distribution gets a wheel and an sdist. The core wheel alone owns
``agenitry/__init__.py``; the gateway and every adapter ship only ``agenitry/<part>/``, so
installing one can never overwrite the core's root module, and ``from agenitry import X``
keeps working beside ``import agenitry.gateway``. Every wheel carries its ``py.typed``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
DISTRIBUTIONS = sorted(path.name for path in PACKAGES.iterdir() if (path / "pyproject.toml").exists())


def _name(archive: Path) -> str:
    return archive.name.split("-")[0].replace("_", "-")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make dist`` into a temporary directory (``-o``: the test's own venv is taken as built)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed-stamp", "dist", f"DIST={out}"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def wheels(dist: Path) -> dict[str, Path]:
    built = {_name(wheel): wheel for wheel in dist.glob("*.whl")}
    assert sorted(built) == DISTRIBUTIONS
    return built


def test_make_dist_builds_a_wheel_and_an_sdist_of_every_distribution(dist: Path) -> None:
    assert sorted(_name(sdist) for sdist in dist.glob("*.tar.gz")) == DISTRIBUTIONS
    assert len(list(dist.iterdir())) == 2 * len(DISTRIBUTIONS)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_every_wheel_carries_its_py_typed(wheels: dict[str, Path], name: str) -> None:
    part = name.removeprefix("agenitry").removeprefix("-").replace("-", "_")
    marker = f"agenitry/{part}/py.typed" if part else "agenitry/py.typed"
    with zipfile.ZipFile(wheels[name]) as archive:
        assert marker in archive.namelist()


def _python_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [name for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")]


def test_core_wheel_owns_the_root_module_and_nothing_else(wheels: dict[str, Path]) -> None:
    files = _python_files(wheels["agenitry"])
    assert "agenitry/__init__.py" in files
    assert "agenitry/py.typed" in files
    parts = {name.split("/")[1] for name in files if name.count("/") >= 2}
    assert parts == set(), f"the core wheel carries subpackages: {parts}"


@pytest.mark.parametrize("name", [name for name in DISTRIBUTIONS if name != "agenitry"])
def test_other_wheels_ship_only_their_own_subpackage(wheels: dict[str, Path], name: str) -> None:
    part = name.removeprefix("agenitry-").replace("-", "_")
    files = _python_files(wheels[name])
    assert files, f"{name} is empty"
    strays = [file for file in files if not file.startswith(f"agenitry/{part}/")]
    assert strays == [], f"{name} ships files outside agenitry/{part}/"


def test_installed_wheels_import_side_by_side(wheels: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            *map(str, wheels.values()),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import agenitry, agenitry.gateway; from agenitry import AgenitryError, canonical_json; "
        "print(agenitry.__file__); print(agenitry.gateway.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True
    )
    core, gateway = done.stdout.split()
    assert core.startswith(str(target)) and gateway.startswith(str(target))
