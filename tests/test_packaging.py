"""The package a user installs: a real wheel, its contents, its version, its type hints."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import joblite

ROOT = Path(__file__).resolve().parents[1]
_WHERE = (
    "import importlib.metadata, joblite;"
    " print(joblite.__file__, joblite.__version__, importlib.metadata.version('joblite'))"
)


# the wheel alone, from the file: no index, no dependencies, not the editable checkout
_OFFLINE = ["--quiet", "--no-deps", "--no-index", "--force-reinstall"]


def _clean_env() -> dict[str, str]:
    # PYTHONPATH would put a source checkout ahead of what is installed
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _build_wheel(tmp_path: Path) -> Path:
    # Build from a copy so the checkout gets no build/ or egg-info written into it.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "joblite", source / "joblite", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("tests", "benchmarks", "examples"):  # present, so leaving them out is tested
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    return _build(source, "--wheel", tmp_path, "joblite-*.whl")


def _build(source: Path, kind: str, outdir: Path, pattern: str) -> Path:
    """Build ``kind`` (--wheel or --sdist) offline from ``source``; return the one file made."""
    subprocess.run(
        [sys.executable, "-m", "build", kind, "--no-isolation", "--outdir", str(outdir)],
        cwd=source,
        env=_clean_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = outdir.glob(pattern)
    return built


def _fresh_venv(path: Path) -> Path:
    """A venv whose dependencies come from this test environment, joblite excluded."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
        check=True,
        timeout=120,
    )
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if sys.prefix != sys.base_prefix:
        # Run from a venv: --system-site-packages reaches the base Python, not this venv,
        # so its site-packages go in by a .pth (plain paths: its .pth files, among them an
        # editable joblite, are not run).
        venv_site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        paths = {*site.getsitepackages(), sysconfig.get_path("purelib")}
        Path(venv_site, "_test_environment.pth").write_text("\n".join(sorted(paths)) + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "joblite/py.typed" in names
    assert "joblite/_demo/__init__.py" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "examples")]

    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", *_OFFLINE, str(wheel)],
        env=_clean_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    where = subprocess.run(
        [str(python), "-c", _WHERE],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(tmp_path / "venv")  # the wheel, not a checkout
    # one version: the source's __version__, the wheel's metadata and the module agree
    assert where[1] == where[2] == joblite.__version__
    demo = subprocess.run(
        [str(python), "-m", "joblite", "demo", "--size", "small"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    assert "demo finished" in demo.stdout


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files are the source")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and Path(ROOT, name).is_file()]


@pytest.mark.slow
def test_sdist_holds_the_whole_source(tmp_path: Path) -> None:
    # A partial test suite (top-level test files without conftest.py or tests/data) is
    # what setuptools ships by default: an unpacked sdist must be able to run its tests.
    tracked = _tracked_files()
    source = tmp_path / "src"
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    sdist = _build(source, "--sdist", tmp_path, "joblite-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {name for name in tracked if not name.startswith((".ci/", ".git"))}
    assert sorted(expected - names) == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
