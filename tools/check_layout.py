"""Checks the package's import structure: no import circles, and TensorFlow
kept out of the modules that worker processes run.

Reads every module of `recola_sta` with `ast` (nothing is imported or run),
counting imports inside functions too, since a lazy import is still a
dependency. Two rules:

1. No circles: the graph of imports between the package's modules has no
   cycle (each is printed as `a -> b -> a`).
2. TensorFlow-free modules: the modules named by `--tf_free` (prefixes of
   dotted names) import neither `tensorflow` nor `keras`, directly or through
   another module of the package.

Exit status 0 when both hold, 1 otherwise, so CI or a test can run it:

    python tools/check_layout.py
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys

PACKAGE = "recola_sta"
HEAVY = ("tensorflow", "keras")
# The modules that worker processes (corpus generation, face preprocessing)
# import: they must start without TensorFlow. The TensorFlow boundary is a
# folder boundary: faces/ and data/ whole, and the cache's manifest and job.
DEFAULT_TF_FREE = ("recola_sta.faces", "recola_sta.data", "recola_sta.cache.manifest",
                   "recola_sta.cache.job", "recola_sta.resample", "recola_sta.io_utils",
                   "recola_sta.pools", "recola_sta.cli", "recola_sta.clips",
                   "recola_sta.metrics", "recola_sta.targets", "recola_sta.settings")


def module_names(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every module of the package under `root`, by dotted name."""
    names = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a relative `from . import x` names."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: pathlib.Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(modules of the package, heavy libraries) that `module` imports anywhere."""
    tree = ast.parse(path.read_text(), filename=str(path))
    internal, heavy = set(), set()
    is_package = path.name == "__init__.py"

    def add(name: str) -> None:
        top = name.split(".")[0]
        if top in HEAVY:
            heavy.add(top)
        elif top == PACKAGE:
            # The longest known prefix: `recola_sta.faces.align` -> that module.
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in known:
                    if candidate != module:
                        internal.add(candidate)
                    break
            # Importing `a.b.c` runs the packages `a` and `a.b` first; the
            # importer's own packages have run already, so they add nothing.
            own = module.split(".")
            for end in range(2, len(parts)):
                package = ".".join(parts[:end])
                if package in known and package != module and own[:end] != parts[:end]:
                    internal.add(package)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, is_package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    return internal, heavy


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan),
    each as one cycle through it."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(graph, c) for c in components]


def _cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle from the component's first module back to it."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return component


def heavy_reach(graph: dict[str, set[str]], heavy: dict[str, set[str]],
                module: str) -> list[str] | None:
    """A chain of imports from `module` to a module importing TensorFlow or
    Keras, ending with that library; None if there is none."""
    paths = {module: [module]}
    frontier = [module]
    while frontier:
        nxt = []
        for v in frontier:
            if heavy[v]:
                return paths[v] + [sorted(heavy[v])[0]]
            for w in sorted(graph[v]):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return None


def check(root: pathlib.Path, tf_free: tuple[str, ...]) -> list[str]:
    """The violations of both rules, one line each (empty: the layout holds)."""
    names = module_names(root)
    graph, heavy = {}, {}
    for name, path in names.items():
        graph[name], heavy[name] = imports_of(name, path, set(names))
    problems = [f"import circle: {' -> '.join(c)}" for c in find_cycles(graph)]
    problems += [f"--tf_free names {p}, which is no module or package of {PACKAGE}"
                 for p in tf_free if p not in names]
    for name in sorted(names):
        if any(name == p or name.startswith(p + ".") for p in tf_free):
            chain = heavy_reach(graph, heavy, name)
            if chain:
                problems.append(f"{name} must not import TensorFlow: {' -> '.join(chain)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]),
                        help="The repository root (holding recola_sta/).")
    parser.add_argument("--tf_free", default=",".join(DEFAULT_TF_FREE),
                        help="Comma-separated module prefixes that must not reach TensorFlow.")
    args = parser.parse_args(argv)
    tf_free = tuple(p for p in args.tf_free.split(",") if p)
    problems = check(pathlib.Path(args.root), tf_free)
    for line in problems:
        print(line)
    print(f"{len(module_names(pathlib.Path(args.root)))} modules: "
          f"{'layout holds' if not problems else f'{len(problems)} problem(s)'}.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
