"""The package graph (docs/development.md): which package imports which, what each package's
import loads, no module reaching into another package's private modules or private attributes,
and no import cycle between modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Packages in the sense of the rule: every top-level package, and tools' subpackages.
PACKAGES = ["core", "protocol", "zones", "cache", "sync", "player", "server", "tools"]
SUBPACKAGES = ["tools.cli", "tools.sim", "tools.bench"]

# The third-party libraries of pyproject.toml, by import name.
DIRECT = {
    "PIL",
    "aiosqlite",
    "alembic",
    "asyncpg",
    "fastapi",
    "httptools",
    "httpx",
    "httpx_sse",
    "jinja2",
    "mpv",
    "psutil",
    "pydantic",
    "pygame",
    "redis",
    "sqlalchemy",
    "sqlite_utils",
    "sse_starlette",
    "tenacity",
    "tomli_w",
    "transitions",
    "uvicorn",
    "uvloop",
}
_BASE = {"pydantic", "tomli_w"}  # core's configuration
# tenacity drives the retry policy (core._retry); it loads with the first retry loop made, so
# that importing core (every package does) does not load it.
_SYNC = _BASE | {"httpx", "httpx_sse", "psutil", "sqlite_utils"}
EXPECTED: dict[str, set[str]] = {
    "core": _BASE,
    "protocol": {"pydantic"},
    # The renderers and the compositor: no HTTP client, no database, no libmpv until a video
    # item is played.
    "zones": _BASE | {"PIL", "pygame"},
    "cache": _BASE | {"httpx", "psutil", "sqlite_utils"},
    "sync": _SYNC,
    "player": _SYNC | {"PIL", "pygame", "transitions"},
    # jinja2: the web console's templates, mounted by create_app.
    "server": _BASE | {"fastapi", "httpx", "jinja2", "sqlalchemy", "sse_starlette", "uvicorn"},
    "tools": _BASE,  # the command line imports the rest inside its handlers
}


def _loaded(package: str) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({package!r})\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "print(json.dumps(sorted(tops)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    tops = set(json.loads(out))
    return {"ours": sorted(tops & set(PACKAGES)), "third": sorted(tops & DIRECT)}


@pytest.mark.parametrize("package", PACKAGES)
def test_import_loads_exactly_its_dependencies(package: str) -> None:
    assert _loaded(package)["third"] == sorted(EXPECTED[package])


def test_protocol_depends_on_core_only() -> None:
    assert _loaded("protocol")["ours"] == ["protocol"]


def test_zones_does_not_load_the_network_stack() -> None:
    assert _loaded("zones")["ours"] == ["core", "protocol", "zones"]


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    dotted = ".".join(parts)
    for sub in SUBPACKAGES:
        if dotted == sub or dotted.startswith(sub + "."):
            return sub
    return parts[0]


def _private_target(module: str) -> str | None:
    """The package whose private module ``module`` names, or None if it names no private one."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:index])
    return None


def private_imports(source: str, own: str) -> list[str]:
    """``from other._private import ...`` (and ``import other._private``) in a module of
    package ``own``: ``line: module`` for each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            target = _private_target(module)
            if target and target.split(".")[0] in PACKAGES and target != own:
                found.append(f"{node.lineno}: {module}")
    return found


def test_no_module_imports_another_packages_private_module() -> None:
    sources = [
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "demo" not in path.parts
    ]
    assert len(sources) > 100
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        for line in private_imports(path.read_text(encoding="utf-8"), _package_of(path))
    ]
    assert offenders == []


def test_the_private_import_rule_sees_what_it_must() -> None:
    sample = (
        "from tools.sim._run import Simulation\n"
        "from tools.cli._common import load_from_args\n"
        "from zones import Compositor\n"
        "def f():\n    import zones._video\n"
    )
    assert private_imports(sample, "tools.cli") == ["1: tools.sim._run", "5: zones._video"]
    assert _package_of(ROOT / "tools" / "sim" / "_run.py") == "tools.sim"
    assert _package_of(ROOT / "zones" / "_video.py") == "zones"


# --- no import cycles -----------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules among ``sources`` it imports. ``sources`` maps a module's name
    to (its source, whether it is a package's ``__init__``). Every import statement counts:
    those under ``TYPE_CHECKING`` and inside functions too (a cycle is a cycle to a reader)."""
    graph: dict[str, set[str]] = {}
    for name, (source, is_package) in sources.items():
        package = name if is_package else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in sources}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:
                    if f"{base}.{alias.name}" in sources:  # a module: from tools.sim import _run
                        edges.add(f"{base}.{alias.name}")
                    elif base in sources:
                        edges.add(base)
        graph[name] = edges - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _sources() -> dict[str, tuple[str, bool]]:
    return {
        _module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "demo" not in path.parts
    }


def test_no_module_import_cycle() -> None:
    graph = import_graph(_sources())
    assert {"tools.sim._events", "tools.sim._run", "tools.bench._video"} <= set(graph)
    assert "tools.sim._events" in graph["tools.sim._run"]
    assert import_cycles(graph) == []


# The package graph of docs/development.md: which of our packages each may import.
_LIBRARIES = {"core", "protocol", "zones", "cache", "sync", "player", "server"}
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "protocol": set(),
    "zones": {"core", "protocol"},
    "cache": {"core", "protocol"},
    "sync": {"core", "protocol"},
    "server": {"core", "protocol"},
    "player": {"core", "protocol", "zones", "cache", "sync"},
    "tools.sim": _LIBRARIES,
    "tools.bench": _LIBRARIES | {"tools.sim"},  # bench sync seeds content as the simulator does
    "tools.cli": _LIBRARIES | {"tools.sim", "tools.bench"},
    "tools": {"tools.cli"},
}


def package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded into packages (``tools.sim`` for the simulator's modules)."""

    def package(module: str) -> str:
        for sub in SUBPACKAGES:
            if module == sub or module.startswith(sub + "."):
                return sub
        return module.split(".")[0]

    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges.setdefault(package(module), set()).update(package(t) for t in targets)
    return {name: targets - {name} for name, targets in edges.items()}


def test_the_package_graph_points_down() -> None:
    edges = package_edges(import_graph(_sources()))
    assert set(edges) == set(MAY_IMPORT)
    assert {name: targets - MAY_IMPORT[name] for name, targets in edges.items()} == {
        name: set() for name in MAY_IMPORT
    }
    assert "zones" in edges["player"] and "tools.sim" in edges["tools.cli"]


def test_the_package_graph_check_sees_what_it_must() -> None:
    graph = {
        "zones._text": {"sync._client", "core"},
        "tools.sim._run": {"tools.bench._video", "player"},
        "tools": {"tools.cli"},
    }
    assert package_edges(graph) == {
        "zones": {"sync", "core"},
        "tools.sim": {"tools.bench", "player"},
        "tools": {"tools.cli"},
    }


def test_the_cycle_check_sees_what_it_must() -> None:
    sources = {
        "pkg": ("from pkg._a import A\n", True),
        "pkg._a": ("from pkg._b import B\n", False),
        # Only for the type checker, and still a cycle for a reader.
        "pkg._b": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg._a import A\n",
            False,
        ),
        "pkg._c": ("def f():\n    from pkg import _d\n", False),
        "pkg._d": ("from . import _c\n", False),
        "pkg._e": ("import pkg\nimport os\n", False),
    }
    graph = import_graph(sources)
    assert graph["pkg._c"] == {"pkg._d"} and graph["pkg._d"] == {"pkg._c"}
    assert graph["pkg._e"] == {"pkg"}
    assert import_cycles(graph) == [["pkg._a", "pkg._b"], ["pkg._c", "pkg._d"]]


# --- no private attributes across packages --------------------------------------------------

PLUGIN = ROOT / "tests" / "private_access.py"

_SAMPLE = {
    "zones/__init__.py": "from zones._renderer import Renderer, Shot\n__all__ = ['Renderer', 'Shot']\n",
    "zones/_renderer.py": (
        "from typing import NamedTuple\n"
        "class Renderer:\n"
        "    _shared = 1\n"
        "    def __init__(self) -> None:\n"
        "        self._output: int | None = None\n"
        "    @property\n"
        "    def _size(self) -> int:\n"
        "        return 1\n"
        "    def _learn(self) -> None: ...\n"
        "class Shot(NamedTuple):\n"
        "    zone: str\n"
        "def peek(r: Renderer) -> int | None:\n"
        "    return r._output  # its own package: allowed\n"
    ),
    "tools/__init__.py": "",
    "tools/bench/__init__.py": "",
    "tools/bench/_video.py": (
        "from zones import Renderer, Shot\n"
        "def measure(renderer: Renderer) -> None:\n"
        "    print(renderer._output)\n"
        "    renderer._learn()\n"
        "    print(Renderer._shared, renderer._size)\n"
        "    renderer._output = 2\n"
        "    print(Shot('main')._replace(zone='side'))  # namedtuple's API: allowed\n"
        "class Mine(Renderer):\n"
        "    def go(self) -> None:\n"
        "        self._learn()\n"
    ),
    "tools/sim/__init__.py": "",
    "tools/sim/_run.py": (
        "from tools.bench._video import Mine\n"  # (a private import: the other rule's)
        "from typing import Any\n"
        "def run(mine: Mine, anything: Any) -> None:\n"
        "    mine.go()\n"
        "    print(anything._output, getattr(mine, '_output'))  # Any: unseen\n"
    ),
}


def test_the_private_access_plugin_is_configured() -> None:
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"tests/private_access.py"' in config


def test_the_private_access_plugin_sees_what_it_must(tmp_path: Path) -> None:
    for name, source in _SAMPLE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source, encoding="utf-8")
    (tmp_path / "mypy.ini").write_text(f"[mypy]\nplugins = {PLUGIN}\n", encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir"]
    command += [str(tmp_path / "cache"), "--no-error-summary", "zones", "tools"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True).stdout
    found = sorted(
        (line.split(":")[0], int(line.split(":")[1]), line.split('"')[1])
        for line in out.splitlines()
        if "is private to" in line
    )
    video = str(Path("tools/bench/_video.py"))
    assert found == [
        (video, 3, "_output"),
        (video, 4, "_learn"),
        (video, 5, "_shared"),
        (video, 5, "_size"),
        (video, 6, "_output"),
        (video, 10, "_learn"),
    ], out
