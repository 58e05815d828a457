"""The package's architecture, checked from the source (ast): the layers of `docs/architecture.md`, no import
circle, imports inside functions only for optional dependencies, every module listed in the map, and the size limits
(files, functions) that keep each module readable."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_unlearn"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: lowest first; a module may import from its own layer (without a circle) and the layers below, never above.
#: ``hf_unlearn/__init__.py`` (the public API, imported lazily) sits on top of everything and is not in the list.
LAYERS = (
    ("_torch", "losses", "masking", "hidden", "reference", "io", "salt", "provenance"),  # torch, tasks, files
    ("data",),
    ("methods", "audit"),
    ("hub",),
    ("trainer",),
    ("pipeline",),
    ("cli",),
)
#: imports inside a function, each with why: optional dependencies only.
LAZY_IMPORTS = {
    ("trainer.deepspeed_reference", "deepspeed"): "DeepSpeed is optional (not a dependency); only ZeRO runs need it",
}
#: `hf-unlearn --help` answers without torch: the dispatcher imports a subcommand's module (importlib) only when that
#: subcommand runs, so these edges are not `import` statements and are not checked here.
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package-internal modules (dotted, without ``hf_unlearn.``) an import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        stem = ".".join(p for p in [*base, node.module or ""] if p)
        names = [f"hf_unlearn.{stem}" if stem else "hf_unlearn"]
        names += [f"{names[0]}.{a.name}" for a in node.names]
    else:
        names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
    found = []
    for name in names:
        if name == "hf_unlearn" or not name.startswith("hf_unlearn."):
            continue
        name = name[len("hf_unlearn."):]
        if name in MODULES:
            found.append(name)
    return found


def _imports() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """(module -> the internal modules it imports at module level, [(module, line, imported) inside functions])."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    lazy = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, in_function: bool, module: str = module, path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    if in_function:
                        target = child.module if isinstance(child, ast.ImportFrom) and not child.level else None
                        target = target or (child.names[0].name if isinstance(child, ast.Import) else None)
                        internal = _resolve(module, path, child)
                        lazy.append((module, child.lineno, internal[-1] if internal else target or "?"))
                    else:
                        edges[module].update(m for m in _resolve(module, path, child) if m != module)
                else:
                    visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        visit(tree, False)
    return edges, lazy


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"hf_unlearn.{module} is in no layer: add its top-level name to LAYERS")


def test_every_module_is_in_a_layer_and_no_import_goes_up():
    edges, _ = _imports()
    upward = [f"hf_unlearn.{m} (layer {_layer(m)}) imports hf_unlearn.{t} (layer {_layer(t)})"
              for m, targets in edges.items() if m for t in sorted(targets) if t and _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    edges, _ = _imports()
    edges = {m: {t for t in ts if t} for m, ts in edges.items() if m}
    # a package's __init__ is loaded before its submodules: the package -> submodule edge is not part of a circle
    # only when the submodule does not import the package back, which the search below checks like any other edge
    state: dict[str, int] = {}
    circles = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                walk(target, [*stack, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_imports_inside_functions_only_for_optional_dependencies():
    _, lazy = _imports()
    unexpected = [f"hf_unlearn.{m}:{line} imports {what} inside a function"
                  for m, line, what in lazy if (m, what) not in LAZY_IMPORTS]
    assert not unexpected, "\n".join(unexpected) + "\nMove it to the top of the module, or (optional dependency) " \
        "add it to LAZY_IMPORTS with why."
    for (module, what), why in LAZY_IMPORTS.items():
        assert (module, what) in {(m, w) for m, _, w in lazy}, f"stale LAZY_IMPORTS entry {module}: {what} ({why})"


def test_architecture_map_lists_every_module():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    listed = {line.split("`")[1] for line in text.splitlines() if line.startswith("- `hf_unlearn/")}
    files = {str(p.relative_to(PACKAGE.parent)) for p in MODULES.values()}
    assert not files - listed, f"modules missing from docs/architecture.md: {sorted(files - listed)}"
    assert not listed - files, f"docs/architecture.md lists modules that do not exist: {sorted(listed - files)}"


def test_no_file_or_function_too_long():
    long_files, long_functions = [], []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(PACKAGE.parent)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"hf_unlearn.{module}.{node.name}: {length} lines")
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_one_seeded_sampler():
    """Every random draw of rows goes through data.sampling.seeded_permutation: no other permutation or subset draw
    (numpy's generators, ``randperm``, ``random``) anywhere in the package."""
    draws = ("randperm", "default_rng", "RandomState", "np.random", "random.sample", "random.shuffle", ".choice(",
             ".permutation(")
    found = []
    for module, path in MODULES.items():
        if module == "data.sampling":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#") and any(d in line for d in draws):
                found.append(f"{module}:{number}: {line.strip()}")
    assert not found, "draw rows with data.sampling.seeded_permutation / seeded_subset:\n" + "\n".join(found)
    sampling = MODULES["data.sampling"].read_text()
    assert sampling.count("torch.randperm(") == 1
