"""Promises about the project itself: layering, set-up, import cost."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "joblite"
FEATURES = ("persistence", "parallel", "memory")


def _layer(module: str) -> str:
    """The layer a dotted joblite module belongs to."""
    parts = module.split(".")
    if len(parts) < 2:
        return "top"
    name = parts[1]
    if name.startswith("_demo") or name in ("cli", "__main__", "__init__", "compat"):
        return "top"
    if name == "_core":
        return "core"
    if name == "exceptions":
        return "exceptions"
    return name


def _joblite_imports(path: Path) -> set[str]:
    return _joblite_imports_of_source(path.read_text(), path)


def _joblite_imports_of_source(source: str, path: Path) -> set[str]:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.name == "__init__.py":
        module = module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("joblite"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("joblite"):
                found.add(target)
    return found


def test_imports_go_one_way() -> None:
    allowed = {
        "exceptions": {"exceptions"},
        "core": {"exceptions", "core"},
        **{feature: {"exceptions", "core", feature} for feature in FEATURES},
    }
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source_layer = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if source_layer == "top":
            continue
        for target in _joblite_imports(path):
            if target == "joblite":
                broken.append(f"{path.relative_to(ROOT)} imports the joblite top level")
            elif _layer(target) not in allowed[source_layer]:
                broken.append(f"{path.relative_to(ROOT)} ({source_layer}) imports {target}")
    assert not broken, "\n".join(broken)


def test_layering_check_sees_relative_imports(tmp_path: Path) -> None:
    # The check above must be able to fail: a feature importing another one
    # through a relative import is found and named.
    fake = ROOT / "joblite" / "memory" / "_fake_for_test.py"
    assert not fake.exists()
    imports = _joblite_imports_of_source(
        "from ..parallel import Parallel\nfrom . import _keys\nimport joblite._core.hashing\n",
        fake,
    )
    assert imports == {"joblite.parallel", "joblite.memory", "joblite._core.hashing"}
    assert _layer("joblite.parallel") == "parallel"


def test_no_module_is_over_about_500_lines() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 550
    }
    assert not big


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n\s*(.+?)\n\s*```", readme.split("## Quick start")[1])
    assert len(commands) >= 2
    test_command = commands[1].strip()
    assert test_command == 'pip install -e ".[test]" && python -m pytest'
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_import_joblite_does_not_import_heavy_modules() -> None:
    script = (
        "import sys, joblite, joblite.parallel\n"
        "heavy = ['numpy', 'loky', 'cloudpickle', 'multiprocessing', 'zstandard', 'tqdm',"
        " 'concurrent.futures', 'asyncio', 'dask', 'distributed']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("command", [["--help"], ["demo", "--help"]])
def test_cli_help_lists_subcommands(command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "joblite", *command], capture_output=True, text=True, check=True
    ).stdout
    assert "usage: python -m joblite" in out
    if command == ["--help"]:
        assert "demo" in out
