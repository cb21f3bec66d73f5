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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(sources: dict[str, tuple[Path, str]]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at any level of the file.

    ``sources`` maps module names to (path, source). Module-level,
    function-level and ``TYPE_CHECKING`` imports all count: each is a place
    where the two modules must be read together. ``from . import x`` counts
    as an import of the submodule ``x`` when there is one.
    """
    graph: dict[str, set[str]] = {}
    for module, (path, source) in sources.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    targets.add(submodule if submodule in sources else target)
        graph[module] = {t for t in targets if t in sources and t != module}
    return graph


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or around a circle."""
    reaches = {module: set(targets) for module, targets in graph.items()}
    changed = True
    while changed:  # transitive closure: the package has ~100 modules
        changed = False
        for reached in reaches.values():
            more = set().union(*(reaches[t] for t in reached)) - reached
            if more:
                reached |= more
                changed = True
    cycles = {
        frozenset(m for m in reaches if module in reaches[m] and m in reaches[module])
        for module in reaches
        if module in reaches[module]
    }
    return sorted(sorted(cycle) for cycle in cycles)


# Cycles known and not yet broken, each with why: the list may only shrink. A
# cycle that changes (a module joins it or leaves it) fails as a new one.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}


def test_no_import_cycle_in_the_package() -> None:
    sources = {_module_name(p): (p, p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}
    cycles = {tuple(cycle) for cycle in _import_cycles(_import_graph(sources))}
    new = sorted(cycles - set(KNOWN_CYCLES))
    assert not new, "modules importing each other:\n" + "\n".join(map(str, new))
    gone = sorted(set(KNOWN_CYCLES) - cycles)
    assert not gone, "cycles now broken: remove them from KNOWN_CYCLES:\n" + "\n".join(
        map(str, gone)
    )


def test_cycle_check_sees_function_level_and_type_checking_imports() -> None:
    # The check above must be able to fail, whatever level the imports are at.
    sources = {
        "joblite.a": (ROOT / "joblite" / "a.py", "def f():\n    from . import b\n"),
        "joblite.b": (
            ROOT / "joblite" / "b.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n",
        ),
        "joblite.c": (ROOT / "joblite" / "c.py", "import joblite.a\n"),
        "joblite.d": (ROOT / "joblite" / "d.py", "from .a import f\n"),
    }
    graph = _import_graph(sources)
    assert graph["joblite.a"] == {"joblite.b"}
    assert _import_cycles(graph) == [["joblite.a", "joblite.b", "joblite.c"]]


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
