"""The import contract between the layers: every import points down (or stays in its layer).

    pipeline.core  ←  pipeline.preprocess | pipeline.embed | pipeline.sample_data  ←  models
                   ←  serving  ←  pipeline.orchestrate (and its entry point pipeline.cli)

The three middle packages of the first row are peers: none imports another. Every import of
every module under pipeline/, models/ and serving/ counts, wherever it is written: at the top,
inside a function (a deliberately lazy import is still a dependency), under
`if TYPE_CHECKING:` or in a `try`. The source is read, never imported.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("pipeline", "models", "serving")

# Module prefix → (layer, rank); the longest matching prefix decides. A module may import its
# own layer's modules and those of a lower rank, never a peer layer of the same rank.
LAYERS = {
    "pipeline": ("core", 0),  # the package's __init__: it imports pipeline.core.keras2 only
    "pipeline.core": ("core", 0),
    "pipeline.preprocess": ("preprocess", 1),
    "pipeline.embed": ("embed", 1),
    "pipeline.sample_data": ("sample_data", 1),
    "models": ("models", 2),
    "serving": ("serving", 3),
    "pipeline.orchestrate": ("orchestrate", 4),
    "pipeline.cli": ("orchestrate", 4),  # `python -m pipeline.cli`, handing over to orchestrate
}


def _prefix(module: str) -> str | None:
    """The longest prefix of `module` in LAYERS, or None for a module outside the packages."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix
    return None


def layer_of(module: str) -> tuple[str, int] | None:
    """`(layer, rank)` of a dotted module name of ours, or None for one outside the packages."""
    prefix = _prefix(module)
    return None if prefix is None else LAYERS[prefix]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[pathlib.Path]:
    return sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """`(line, dotted module)` for every import in the file, at any depth. For `from a import
    b` the module is `a.b` when that is a module of ours, else `a`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, `level - 1` packages up
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = _is_our_module(candidate)
                found.append((node.lineno, candidate if is_module else base))
    return found


def _is_our_module(module: str) -> bool:
    path = REPO_ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations() -> list[str]:
    """One line per import against the order: `file:line: imports module (its layer) into layer`."""
    found = []
    for path in source_files():
        own_layer, own_rank = layer_of(module_name(path))
        for line, module in imported_modules(path):
            target = layer_of(module)
            if target is None:
                continue  # the standard library or a third-party package
            layer, rank = target
            if layer == own_layer or rank < own_rank:
                continue
            found.append(
                f"{path.relative_to(REPO_ROOT)}:{line}: imports {module} (layer {layer}) into "
                f"layer {own_layer}, which may import only layers below it"
            )
    return found


def test_every_module_belongs_to_a_layer():
    homeless = [
        str(path.relative_to(REPO_ROOT))
        for path in source_files()
        if _prefix(module_name(path)) == "pipeline" and module_name(path) != "pipeline"
    ]
    assert homeless == [], "modules in no layer (put them in one, or add it to LAYERS)"


def test_every_import_points_down_the_layers():
    found = violations()
    assert not found, "imports against the layer order:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "module", "allowed"),
    [
        ("pipeline.preprocess.events", "pipeline.core.schema", True),
        ("serving.export", "pipeline.embed.text_encoder", True),
        ("pipeline.orchestrate.cli", "serving.push", True),
        ("pipeline.core.staging", "pipeline.preprocess.inputs", False),
        ("pipeline.embed.embed_items", "pipeline.preprocess.records", False),  # peers
        ("models.evaluate", "serving.gate", False),
        ("serving.push", "pipeline.orchestrate.run", False),
    ],
)
def test_the_rule_itself(source, module, allowed):
    own_layer, own_rank = layer_of(source)
    layer, rank = layer_of(module)
    assert (layer == own_layer or rank < own_rank) == allowed
