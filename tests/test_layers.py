"""The package's four floors, held by its imports (README.rst, Architecture).

``engine/`` imports none of the other three floors; ``core/`` neither ``runs/`` nor
``plugin/``; ``runs/`` neither ``core/`` nor ``plugin/``; only ``plugin/`` imports pytest.
The root's ground modules (errors, text, version) import no floor at all. No module
imports another in a circle, none uses another module's private names, and no class
passes 400 lines. The checks read the source with :mod:`ast`; the last test shows that
they catch a forbidden import added to a copy of the package.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_dockernet

PACKAGE = Path(pytest_dockernet.__file__).resolve().parent
FLOORS = ("engine", "core", "runs", "plugin")
FORBIDDEN = {
    "engine": {"core", "runs", "plugin"},
    "core": {"runs", "plugin"},
    "runs": {"core", "plugin"},
    "plugin": set(),
}
GROUND = ("errors", "moved", "text", "version")
MAX_CLASS_LINES = 400


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, dotted (``pytest_dockernet.core.network``)."""
    target: str
    """The imported module, dotted."""
    names: tuple[str, ...]
    line: int
    type_checking: bool
    in_function: bool


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(root: Path, dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (root / relative).with_suffix(".py").is_file() or (root / relative / "__init__.py").is_file()


def imports_in(root: Path, path: Path) -> list[Import]:
    """Every import of ``path``: where it stands (under TYPE_CHECKING, in a function) and what it names."""
    source = module_name(root, path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for inner in child.body:
                    visit_one(inner, True, in_function)
                for inner in child.orelse:
                    visit_one(inner, type_checking, in_function)
                continue
            visit_one(child, type_checking, in_function)

    def visit_one(child: ast.AST, type_checking: bool, in_function: bool) -> None:
        if isinstance(child, ast.Import):
            for alias in child.names:
                found.append(Import(source, alias.name, (), child.lineno, type_checking, in_function))
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = package.split(".")
                base = base[: len(base) - (child.level - 1)]
                target = ".".join(base + ([child.module] if child.module else []))
            else:
                target = child.module or ""
            names = tuple(alias.name for alias in child.names)
            submodules = [name for name in names if is_module(root, f"{target}.{name}")]
            for name in submodules:
                found.append(Import(source, f"{target}.{name}", (), child.lineno, type_checking, in_function))
            rest = tuple(name for name in names if name not in submodules)
            if rest or not submodules:
                found.append(Import(source, target, rest, child.lineno, type_checking, in_function))
        else:
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, type_checking, inner)

    visit(ast.parse(path.read_text()), False, False)
    return found


def sources(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def floor_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[0] == "pytest_dockernet" and parts[1] in FLOORS:
        return parts[1]
    return None


def own(dotted: str) -> bool:
    return dotted == "pytest_dockernet" or dotted.startswith("pytest_dockernet.")


def layer_violations(root: Path) -> list[str]:
    """Imports that go up or sideways between floors, and pytest imported below ``plugin/``."""
    problems = []
    for path in sources(root):
        source = module_name(root, path)
        floor = floor_of(source)
        ground = source.rpartition(".")[2] in GROUND and source.count(".") == 1
        for imported in imports_in(root, path):
            target_floor = floor_of(imported.target)
            where = f"{path.relative_to(root.parent)}:{imported.line}"
            if floor is not None and target_floor in FORBIDDEN[floor]:
                problems.append(f"{where}: {floor}/ imports {imported.target} ({target_floor}/)")
            if ground and (target_floor is not None or imported.target == "pytest_dockernet"):
                problems.append(f"{where}: the ground module {source} imports {imported.target}")
            if (
                floor in FORBIDDEN
                and floor != "plugin"
                and imported.target.split(".")[0] in ("pytest", "_pytest")
            ):
                problems.append(f"{where}: {floor}/ imports {imported.target}: only plugin/ imports pytest")
            if floor == "runs" and imported.target == "pytest_dockernet":
                problems.append(f"{where}: runs/ imports the package root, which holds core/")
    return problems


def runtime_graph(root: Path) -> dict[str, set[str]]:
    """Which of the package's modules each one imports when it runs (TYPE_CHECKING imports left out)."""
    graph: dict[str, set[str]] = {}
    for path in sources(root):
        source = module_name(root, path)
        edges = graph.setdefault(source, set())
        for imported in imports_in(root, path):
            if imported.type_checking or not own(imported.target) or imported.target == source:
                continue
            edges.add(imported.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


# Private names of other projects the package reads on purpose, each for a reason.
THIRD_PARTY_PRIVATES = {
    "_create_container_args": "docker-py's own translation of containers.run() arguments",
    "_fixtureinfo": "pytest's fixture definitions of an item: the only way from a name to its function",
}


def private_uses(root: Path) -> list[str]:
    """Private names one module takes from another: imported, or read off an object that is
    not ``self``, ``cls`` or ``other`` (a method of a class reading its own kind)."""
    problems = []
    for path in sources(root):
        where = path.relative_to(root.parent)
        for imported in imports_in(root, path):
            for name in imported.names:
                if own(imported.target) and name.startswith("_") and not name.startswith("__"):
                    problems.append(f"{where}:{imported.line}: imports {name} from {imported.target}")
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "other"))
                and node.attr not in THIRD_PARTY_PRIVATES
            ):
                problems.append(f"{where}:{node.lineno}: uses {ast.unparse(node)}")
    return problems


def long_classes(root: Path) -> list[str]:
    found = []
    for path in sources(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    found.append(f"{path.relative_to(root.parent)}: class {node.name} has {length} lines")
    return found


# ---- the package as it is -----------------------------------------------------------------


def test_every_floor_imports_only_the_floors_it_may():
    assert layer_violations(PACKAGE) == []


def test_no_module_imports_another_in_a_circle():
    assert cycles(runtime_graph(PACKAGE)) == []


def test_only_the_package_root_imports_inside_functions():
    # An import inside a function hides a dependency from the module's head (and from the
    # circle check above): only the root's lazy service_fixture and the moved paths' shims do it.
    lazy = [
        f"{path.relative_to(PACKAGE.parent)}:{imported.line}: {imported.target}"
        for path in sources(PACKAGE)
        for imported in imports_in(PACKAGE, path)
        if imported.in_function and own(imported.target) and path.parent != PACKAGE
    ]
    assert lazy == []


def test_no_module_uses_another_modules_private_names():
    assert private_uses(PACKAGE) == []


def test_no_class_is_past_400_lines():
    assert long_classes(PACKAGE) == []


def test_the_lower_floors_import_with_pytest_unimportable():
    modules = sorted(
        module_name(PACKAGE, path)
        for path in sources(PACKAGE)
        if floor_of(module_name(PACKAGE, path)) in ("engine", "core", "runs")
    )
    assert len(modules) > 20
    script = (
        "import importlib, sys\n"
        "sys.modules['pytest'] = None\nsys.modules['_pytest'] = None\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        "assert 'pytest' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('imported', len(" + repr(modules) + "))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"imported {len(modules)}" in done.stdout


# ---- the checks catch what they are for ---------------------------------------------------


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "pytest_dockernet"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def add_line(path: Path, line: str) -> None:
    text = path.read_text()
    head, marker, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + marker + line + "\n" + rest if marker else line + "\n" + text)


def test_a_forbidden_import_added_is_caught(package_copy: Path):
    assert layer_violations(package_copy) == []
    add_line(package_copy / "engine" / "naming.py", "from ..core import network")
    add_line(package_copy / "runs" / "lease.py", "from ..core.manager import NetworkManager")
    add_line(package_copy / "core" / "network.py", "import pytest")
    problems = layer_violations(package_copy)
    assert any("engine/naming.py" in p and "pytest_dockernet.core.network" in p for p in problems), problems
    assert any("runs/lease.py" in p and "pytest_dockernet.core.manager" in p for p in problems), problems
    assert any("core/network.py" in p and "only plugin/ imports pytest" in p for p in problems), problems


def test_a_circle_added_is_caught(package_copy: Path):
    assert cycles(runtime_graph(package_copy)) == []
    add_line(package_copy / "engine" / "naming.py", "from . import cleanup")
    assert ["pytest_dockernet.engine.cleanup", "pytest_dockernet.engine.naming"] in cycles(
        runtime_graph(package_copy)
    )


def test_a_private_name_taken_is_caught(package_copy: Path):
    assert private_uses(package_copy) == []
    add_line(package_copy / "core" / "manager.py", "from ..engine.naming import _DNS_LABEL_RE")
    add_line(package_copy / "core" / "partition.py", "def peek(network):\n    return network._guests\n")
    problems = private_uses(package_copy)
    assert any("_DNS_LABEL_RE" in p for p in problems), problems
    assert any("network._guests" in p for p in problems), problems


def test_a_class_past_400_lines_is_caught(package_copy: Path):
    body = "".join(f"    def method_{n}(self) -> int:\n        return {n}\n\n" for n in range(140))
    add_line(package_copy / "core" / "partition.py", "class Huge:\n" + body)
    assert any("class Huge has" in p for p in long_classes(package_copy))
