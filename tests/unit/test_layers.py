"""The package's layers (docs/architecture.md): no import runs up a layer, upstream/ and
store/ never import each other, and every module has a layer. Read from the source with
ast, imports inside functions and under TYPE_CHECKING included. (Why not import-linter:
docs/adr/0501-locked-dependencies.md.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "promptstream"

# Top to bottom; a module may import its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"http"},
    {"run"},
    {"knowledge"},
    {"upstream", "store"},
    {
        "_config",
        "_errors",
        "_sse",
        "_templates",
        "_ids",
        "_logging",
        "_json",
        "_tokens",
        "_token_words",
        "_redact",
        "_sanitize",
        "_usage",
    },
]
# Side by side, and neither may import the other.
INDEPENDENT = {"upstream", "store"}


def part_of(module: str) -> str:
    """``promptstream.store._store`` -> ``store``; the package's own ``__init__`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rank(part: str) -> int:
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    raise LookupError(part)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports, absolute."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            names.add(target)
            # ``from . import _logging``: the names may be modules themselves.
            names.update(f"{target}.{alias.name}" for alias in node.names)
    every = modules()
    return {name for name in names if name in every and name.startswith("promptstream.")}


def test_every_module_has_a_layer() -> None:
    parts = {part_of(module) for module in modules()} - {""}
    assert parts - set().union(*LAYERS) == set()


@pytest.mark.parametrize("module", sorted(m for m in modules() if part_of(m)))
def test_no_import_runs_up_a_layer_or_across_independent_ones(module: str) -> None:
    own = part_of(module)
    wrong = sorted(
        target
        for target in imported(module, modules()[module])
        if part_of(target)
        and (
            rank(part_of(target)) < rank(own)
            or (own in INDEPENDENT and part_of(target) in INDEPENDENT - {own})
        )
    )
    assert wrong == [], f"{module} imports up a layer or across: {wrong}"


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("promptstream.store._firestore", "from ..http._handler import endpoint", "promptstream.http._handler"),
        ("promptstream._json", "from .run import _executions", "promptstream.run._executions"),
        ("promptstream.upstream._routing", "import promptstream.store._limits", "promptstream.store._limits"),
        ("promptstream.knowledge", "from .._service import x\nfrom ..run import _request", "promptstream.run._request"),
        ("promptstream.store._store", "def f():\n    from ..http import _asgi", "promptstream.http._asgi"),
    ],
)
def test_the_reader_sees_each_form_of_import(
    tmp_path: Path, module: str, source: str, target: str
) -> None:
    name = "__init__.py" if module == "promptstream.knowledge" else "sample.py"
    path = tmp_path / name
    path.write_text(source)
    assert target in imported(module, path)
