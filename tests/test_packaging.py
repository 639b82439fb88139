"""The namespace-package recipe holds: every wheel ships only its own part of ``agenitry``.

The core wheel alone owns ``agenitry/__init__.py``; the gateway and every adapter ship only
``agenitry/<part>/``, so installing one can never overwrite the core's root module, and
``from agenitry import X`` keeps working beside ``import agenitry.gateway``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
DISTRIBUTIONS = sorted(path.name for path in PACKAGES.iterdir() if (path / "pyproject.toml").exists())


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    for name in DISTRIBUTIONS:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(PACKAGES / name)],
            check=True,
            capture_output=True,
        )
    built = {}
    for wheel in out.glob("*.whl"):
        built[wheel.name.split("-")[0].replace("_", "-")] = wheel
    assert sorted(built) == DISTRIBUTIONS
    return built


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
