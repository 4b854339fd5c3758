"""The dependency graph of jaxsr, read from the source (every `jaxsr/**/*.py` parsed with `ast`;
nothing is imported, so a test run never hides a cycle that an import order happens to tolerate).

Layers, bottom to top; a package may import only packages of a lower layer:

  0  io                          image files in and out (no other jaxsr package)
  1  models                      the Flax networks
  2  checkpoint, degradation     model directories; the second-order degradation (TF)
  3  convert, data, infer        weight conversion; training/evaluation data; upscaling
  4  evaluate                    protocols, metrics, the evaluation driver
  5  train                       the trainer (validates with evaluate's protocols and metrics)
  6  study, demo, upscale,       what users run: the study, and the top-level CLIs
     degrade                     (jaxsr/demo.py, jaxsr/upscale.py, jaxsr/degrade.py)

Why: each layer can be read, tested and reused without the ones above it (reading a DICOM needs
no network; evaluating a model needs no trainer), and a change can only break what sits above
it. Within a package any import is allowed, but no module may reach itself again through its
imports (function-level imports count too: a cycle deferred into a function is still a cycle).

Function-level imports of jaxsr modules hide the graph from a reader of the module's top. They
are allowed only where `FUNCTION_LEVEL_IMPORTS` gives a reason the import cannot move (a CLI
that must set JAX's CPU device count before the modules that could start JAX are loaded, a heavy
optional dependency only one branch needs); a new one fails here until it is moved to the top
or listed with its reason, and an entry that no longer matches an import fails too, so the list
stays exact.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxsr"

LAYERS = {
    "io": 0,
    "models": 1,
    "checkpoint": 2, "degradation": 2,
    "convert": 3, "data": 3, "infer": 3,
    "evaluate": 4,
    "train": 5,
    "study": 6, "demo": 6, "upscale": 6, "degrade": 6,
}

_DEVICE_COUNT = ("CLI: imported after the CPU device count is set (sharding.use_cpu_cores), so "
                 "that nothing these modules do at import can start JAX's backends with one "
                 "device; flag errors and --help also stay fast (no TensorFlow)")

# (file, imported module) -> why the import stays inside a function.
FUNCTION_LEVEL_IMPORTS = {
    ("jaxsr/data/source_specs.py", "jaxsr.data.tfds_source"):
        "tfds_source loads tensorflow_datasets and TensorFlow (seconds); only tfds: specs pay for "
        "them, so evaluating files or the bundled images stays light",
    ("jaxsr/study/__main__.py", "jaxsr.study.runner"): _DEVICE_COUNT,
    ("jaxsr/study/__main__.py", "jaxsr.study.writeup"): _DEVICE_COUNT,
    ("jaxsr/train/__main__.py", "jaxsr.train.perceptual"): _DEVICE_COUNT,
    ("jaxsr/train/__main__.py", "jaxsr.train.pretrained"): _DEVICE_COUNT,
    ("jaxsr/train/__main__.py", "jaxsr.train.trainer"): _DEVICE_COUNT,
    ("jaxsr/upscale.py", "jaxsr.infer.devices"):
        "CLI: after the argument checks, so --help and usage errors stay instant; "
        "use_cpu_cores() then runs before the upscaler's modules load",
    ("jaxsr/upscale.py", "jaxsr.infer.compilation_cache"):
        "CLI: after the argument checks (it imports JAX), before anything compiles",
    ("jaxsr/upscale.py", "jaxsr.infer.upscaler"): _DEVICE_COUNT,
}


@dataclasses.dataclass(frozen=True)
class Import:
  file: str  # Relative to the repository, e.g. "jaxsr/data/source.py".
  module: str  # The importing module, e.g. "jaxsr.data.source".
  target: str  # The imported jaxsr module (a package's __init__ is the package's name).
  line: int
  in_function: bool


def _module_name(path: Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
  return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _targets(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
  """The jaxsr modules an import statement loads (`from a import b`: a.b if it is a module)."""
  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:  # Relative: resolved against the importing module's package.
      package = module.split(".") if is_package else module.split(".")[:-1]
      package = package[:len(package) - (node.level - 1)]
      base = ".".join(package + ([base] if base else []))
    names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
             for alias in node.names]
  return sorted({name for name in names if name == "jaxsr" or name.startswith("jaxsr.")})


def _imports() -> list[Import]:
  known = _modules()
  found = []
  for module, path in known.items():
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> None:
      for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
          for target in _targets(child, module, path.name == "__init__.py", known):
            found.append(Import(str(path.relative_to(ROOT)), module, target, child.lineno,
                                in_function))
        visit(child, in_function or isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
  return found


def _layer_name(module: str) -> str | None:
  """The layer key of a module: its package under jaxsr, or the top-level module's name."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else None  # `jaxsr` itself (the version string) has none.


def test_every_package_has_a_layer():
  unknown = sorted({_layer_name(m) for m in _modules()} - set(LAYERS) - {None})
  assert not unknown, f"new jaxsr packages or top-level modules {unknown}: give them a layer"


def test_packages_import_only_lower_layers():
  violations = []
  for imp in _imports():
    here, there = _layer_name(imp.module), _layer_name(imp.target)
    if here is None or there is None or here == there:
      continue
    if LAYERS[there] >= LAYERS[here]:
      violations.append(f"{imp.file}:{imp.line} imports {imp.target}: {here} (layer "
                        f"{LAYERS[here]}) may not import {there} (layer {LAYERS[there]})")
  assert not violations, "layering violations:\n" + "\n".join(violations)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  """One cycle of the graph as [a, b, ..., a], or None (iterative depth-first search)."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done.
  for start in sorted(edges):
    if state.get(start):
      continue
    path, stack = [start], [iter(sorted(edges.get(start, ())))]
    state[start] = 1
    while stack:
      step = next(stack[-1], None)
      if step is None:
        state[path.pop()] = 2
        stack.pop()
      elif state.get(step) == 1:
        return path[path.index(step):] + [step]
      elif not state.get(step):
        state[step] = 1
        path.append(step)
        stack.append(iter(sorted(edges.get(step, ()))))
  return None


def test_no_import_cycle_between_jaxsr_modules():
  edges: dict[str, set[str]] = {}
  for imp in _imports():
    if imp.target != imp.module:
      edges.setdefault(imp.module, set()).add(imp.target)
  cycle = _find_cycle(edges)
  assert cycle is None, "import cycle (function-level imports included): " + " -> ".join(cycle)


def test_find_cycle_finds_one():  # The checker itself, on a graph with and without a cycle.
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_function_level_imports_only_where_a_reason_requires_them():
  found = {(imp.file, imp.target): imp for imp in _imports() if imp.in_function}
  new = [f"{imp.file}:{imp.line} imports {imp.target} inside a function"
         for key, imp in sorted(found.items()) if key not in FUNCTION_LEVEL_IMPORTS]
  assert not new, ("move these imports to the top of their modules (or list them, with the "
                   "reason, in FUNCTION_LEVEL_IMPORTS):\n" + "\n".join(new))
  stale = sorted(set(FUNCTION_LEVEL_IMPORTS) - set(found))
  assert not stale, f"FUNCTION_LEVEL_IMPORTS lists imports that are gone; remove {stale}"
  assert all(reason.strip() for reason in FUNCTION_LEVEL_IMPORTS.values())
