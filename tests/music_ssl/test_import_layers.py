"""The core's modules form layers: no module imports, even for type checking or inside a function, one
that imports it back. Read from the source, so an import that runs only in some calls counts too."""

import ast
from pathlib import Path

import music_ssl

PACKAGE = Path(music_ssl.__file__).resolve().parent


def _module_name(path: Path, package: Path) -> str:
    parts = (package.name, *path.relative_to(package).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_between_modules(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Every module of the package in ``root`` (default: music_ssl) -> the modules of it that it imports (a
    ``from X import name`` counts as importing X.name when that is a module, else X); the package's own
    __init__ is left out, since it only gathers the public names."""
    modules = {_module_name(path, root): path for path in root.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name == root.name:
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in modules else base)
        edges[name] = {target for target in found if target in modules and target not in (name, root.name)}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each a path that leads from a module back to it."""
    found = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(edges.get(path[-1], ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest module
                walk([*path, nxt])

    for module in sorted(edges):
        walk([module])
    return found


def test_the_core_has_no_import_cycle():
    assert cycles(imports_between_modules()) == []


def test_the_check_sees_a_cycle_and_a_type_only_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    edges = imports_between_modules()
    # fused.py imports the registry for type checking only; that import counts.
    assert "music_ssl.registry" in edges["music_ssl.fused"]
    # The math below every implementation imports none of them.
    assert edges["music_ssl.segments"] == {"music_ssl.checks"}
    assert "music_ssl.fused" not in edges["music_ssl.reference"]
