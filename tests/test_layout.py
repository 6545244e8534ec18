"""The package layout: layers that import one way, and no import cycle.

``draw_tf/`` is grouped by layer (see :data:`LAYERS`); the top-level ``export/``
folder installs as ``draw_tf.export``. Every ``.py`` file of both is parsed with
:mod:`ast` (nothing is imported); an edge ``a -> b`` is any import of project
module ``b`` in module ``a``, at the top level or inside a function.
``from P import X`` is an import of ``P.X`` when that is a module, else of ``P``
(``P/__init__``). Relative imports are resolved. A package ``__init__`` importing
its own submodules is the normal way down and counts like any other edge; a cycle
through it still fails.
"""

import ast
import configparser
import os

# Module-name prefix -> folder, relative to the repository root.
PACKAGES = {"draw_tf": "draw_tf", "draw_tf.export": "export"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The layers, bottom up: the foundations every layer uses (errors, files, random
# streams, progress, disk and memory), the model and its maths, data, a run on
# disk (config rules, workdir, checkpoints), training and evaluation, the shipped
# pretrained models, export, and the binaries on top.
BASE = {"draw_tf.errors", "draw_tf.fileio", "draw_tf.seeds", "draw_tf.progress", "draw_tf.disk_space",
        "draw_tf.memory"}
LAYERS = ("model", "data", "runs", "training", "pretrained", "export", "cli")
ALL = {"api", "base", *LAYERS}
# Layer -> the layers its modules may import. Training and the pretrained models
# use each other (``draw-eval`` takes ``pretrained:NAME``; ``pretrained.load``
# compiles a model as training does); export loads a workdir's model (runs) and
# the pretrained models (with ``compile=False``), never training or the binaries.
MAY_IMPORT = {
    "api": {"model"},  # draw_tf/__init__: the public classes
    "base": {"base"},
    "model": {"base", "model"},
    "data": {"base", "data"},
    "runs": {"base", "model", "data", "runs"},  # the data fields' choices are the data layer's lists
    "training": {"base", "model", "data", "runs", "training", "pretrained"},
    "pretrained": {"base", "model", "data", "runs", "training", "pretrained"},
    "export": {"base", "model", "runs", "pretrained", "export"},
    "cli": ALL,
}
# The maths of the paper: pure functions of tensors, no Keras layer, nothing above.
MATHS = {"draw_tf.model.filterbank": {"draw_tf.model.variants"}, "draw_tf.model.losses": set(),
         "draw_tf.model.variants": {"draw_tf.errors"}}
MAX_LINES = 400
MAX_FUNCTION_LINES = 80  # longer only under a comment line "# Over 80 lines: <why>" above it


def long_functions(source: str, path: str = "<source>") -> list:
  """``"path:line name (n lines)"`` for each function over :data:`MAX_FUNCTION_LINES` without its note."""
  lines = source.splitlines()
  found = []
  for node in ast.walk(ast.parse(source, path)):
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      continue
    length = node.end_lineno - node.lineno + 1
    top = min([node.lineno] + [d.lineno for d in node.decorator_list])
    note = lines[top - 2].strip() if top >= 2 else ""
    if length > MAX_FUNCTION_LINES and not note.startswith("# Over 80 lines:"):
      found.append(f"{path}:{node.lineno} {node.name} ({length} lines)")
  return found


def layer(module: str) -> str:
  """The layer of a project module (``draw_tf.model.cell`` -> ``model``); ValueError if none."""
  if module == "draw_tf":
    return "api"
  if module in BASE:
    return "base"
  parts = module.split(".")
  if len(parts) >= 2 and parts[1] in LAYERS:
    return parts[1]
  raise ValueError(f"{module} belongs to no layer: put it in a layer's folder (tests/test_layout.py LAYERS)")


def layer_violations(graph: dict) -> list:
  """``"a -> b (layer -> layer)"`` for every import of ``graph`` the layer rule forbids."""
  found = []
  for module, deps in sorted(graph.items()):
    for dep in sorted(deps):
      to = "model" if layer(dep) == "api" else layer(dep)  # ``import draw_tf``: the model's classes
      if to not in MAY_IMPORT[layer(module)]:
        found.append(f"{module} -> {dep} ({layer(module)} -> {layer(dep)})")
      elif module in MATHS and dep not in MATHS[module]:
        found.append(f"{module} -> {dep} (the maths imports only {sorted(MATHS[module]) or 'nothing'})")
  return found


def _modules() -> dict:
  """Module name -> file path for every .py file in :data:`PACKAGES`."""
  modules = {}
  for package, folder in PACKAGES.items():
    top = os.path.join(ROOT, folder)
    for here, _, names in os.walk(top):
      for name in names:
        if not name.endswith(".py"):
          continue
        path = os.path.join(here, name)
        parts = package.split(".") + os.path.relpath(path, top)[:-len(".py")].split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        modules[".".join(parts)] = path
  return modules


def _imports(module: str, path: str, modules: dict) -> set:
  """The project modules that ``module`` (file ``path``) imports anywhere in its body."""
  is_package = os.path.basename(path) == "__init__.py"
  package = module if is_package else module.rpartition(".")[0]
  found = set()

  def add(name):
    # The longest prefix of ``name`` that is a project module (a.b.c -> a.b).
    while name and name not in modules:
      name = name.rpartition(".")[0]
    if name:
      found.add(name)

  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      for alias in node.names:
        add(alias.name)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
      else:
        source = node.module
      for alias in node.names:
        full = f"{source}.{alias.name}"
        add(full if full in modules else source)
  found.discard(module)
  return found


def _find_cycle(graph: dict):
  """One cycle of ``graph`` (``node -> set of nodes``) as a list ``[a, b, ..., a]``, or None."""
  white, grey, black = 0, 1, 2
  colour = dict.fromkeys(graph, white)
  stack = []

  def visit(node):
    colour[node] = grey
    stack.append(node)
    for nxt in sorted(graph[node]):
      if colour[nxt] == grey:
        return stack[stack.index(nxt):] + [nxt]
      if colour[nxt] == white:
        cycle = visit(nxt)
        if cycle:
          return cycle
    stack.pop()
    colour[node] = black
    return None

  for node in sorted(graph):
    if colour[node] == white:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def import_graph() -> dict:
  """Module -> set of project modules it imports, over draw_tf/ and export/."""
  modules = _modules()
  return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_the_graph_sees_top_level_function_level_and_relative_imports(tmp_path):
  """The parser finds every kind of import the cycle check relies on (else it could not fail)."""
  pkg = tmp_path / "pkg"
  (pkg / "sub").mkdir(parents=True)
  files = {
      "pkg": ("__init__.py", "from pkg.a import f\n"),
      "pkg.a": ("a.py", "import os\n\ndef f():\n  from . import b\n  from .b import g\n"),
      "pkg.b": ("b.py", "import pkg\nimport pkg.sub.c\n\ndef g():\n  pass\n"),
      "pkg.sub": ("sub/__init__.py", "from .. import a\n"),
      "pkg.sub.c": ("sub/c.py", "from pkg import f\nfrom ..sub import d\n"),
      "pkg.sub.d": ("sub/d.py", "from .c import *\n"),
  }
  modules = {}
  for name, (rel, text) in files.items():
    (pkg / rel).write_text(text)
    modules[name] = str(pkg / rel)
  graph = {m: _imports(m, p, modules) for m, p in modules.items()}
  assert graph == {
      "pkg": {"pkg.a"},  # from P.mod import name: P.mod
      "pkg.a": {"pkg.b"},  # inside a function, relative; the stdlib is left out
      "pkg.b": {"pkg", "pkg.sub.c"},  # import P: P/__init__; import P.sub.mod: P.sub.mod
      "pkg.sub": {"pkg.a"},  # .. from a package __init__
      "pkg.sub.c": {"pkg", "pkg.sub.d"},  # from P import function: P/__init__
      "pkg.sub.d": {"pkg.sub.c"},
  }
  assert _find_cycle(graph) == ["pkg", "pkg.a", "pkg.b", "pkg"]
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
  assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
  # And on the real packages: every module is there, with its real imports.
  real = import_graph()
  assert {"draw_tf", "draw_tf.model.draw_model", "draw_tf.export", "draw_tf.export.sampler",
          "draw_tf.export.contract", "draw_tf.cli.train_main"} <= set(real)
  assert "draw_tf.training.train" in real["draw_tf.cli.train_main"]
  assert "draw_tf.export.contract" in real["draw_tf.export.sampler"]
  assert "draw_tf.export.sampler" in real["draw_tf.export.export_lib"]


def test_no_import_cycle_in_draw_tf():
  """No module imports itself through others, not even from inside a function."""
  graph = import_graph()
  cycle = _find_cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_each_layer_imports_only_the_layers_below():
  """binaries -> training -> runs -> model -> maths; data used by runs and training; export knows the
  model and a workdir's model, never training or the binaries (:data:`MAY_IMPORT`)."""
  violations = layer_violations(import_graph())
  assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_the_layer_rule_can_fail():
  """The check sees an import up the layers, a maths module that imports a layer, a stray module."""
  ok = {"draw_tf.cli.train_main": {"draw_tf.training.train"}, "draw_tf.training.train": {"draw_tf.model.cell"},
        "draw_tf.export.sampler": {"draw_tf.runs.workdir", "draw_tf.model.draw_model"}}
  assert layer_violations(ok) == []
  assert layer_violations({"draw_tf.model.cell": {"draw_tf.training.train"}}) == [
      "draw_tf.model.cell -> draw_tf.training.train (model -> training)"]
  assert layer_violations({"draw_tf.export.sampler": {"draw_tf.training.tasks"}}) == [
      "draw_tf.export.sampler -> draw_tf.training.tasks (export -> training)"]
  assert layer_violations({"draw_tf.model.losses": {"draw_tf.model.layers"}}) == [
      "draw_tf.model.losses -> draw_tf.model.layers (the maths imports only nothing)"]
  try:
    layer("draw_tf.helpers")
  except ValueError as e:
    assert "belongs to no layer" in str(e)
  else:
    raise AssertionError("a module outside the layers passed")


def test_no_module_is_over_400_lines():
  """Every module of draw_tf (export included) fits the budget, so each reads as one unit."""
  long = {m: n for m, p in _modules().items() if (n := len(open(p).read().splitlines())) > MAX_LINES}
  assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_function_is_over_80_lines_without_a_reason():
  """A function reads in one screen, or a comment above it says why it cannot."""
  long = [f for m, p in _modules().items() for f in long_functions(open(p).read(), p)]
  assert not long, "functions over 80 lines with no '# Over 80 lines: why' above them:\n" + "\n".join(long)
  body = "def f():\n" + "  x = 1\n" * 80
  assert long_functions(body) == ["<source>:1 f (81 lines)"]  # the check can fail
  assert long_functions("# Over 80 lines: a reason.\n@dec\n" + body) == []
  assert long_functions(body.replace("  x = 1\n", "", 1)) == []


def test_setup_cfg_installs_every_package_and_nothing_else_at_the_top():
  """setup.cfg's package list is the tree's packages, all under draw_tf (export/ mapped in)."""
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(ROOT, "setup.cfg"))
  listed = set(cfg["options"]["packages"].split())
  tree = {m for m, p in _modules().items() if p.endswith("__init__.py")}
  assert listed == tree
  assert {p.split(".")[0] for p in listed} == {"draw_tf"}
  package_dir = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
  assert package_dir == {"draw_tf.export": "export"}


def _source(*parts) -> str:
  with open(os.path.join(ROOT, *parts)) as f:
    return f.read()


def test_draw_model_py_holds_the_model_only():
  """The redesign's budget: DrawModel alone, under 400 lines; the cell, layers and loop elsewhere."""
  source = _source("draw_tf", "model", "draw_model.py")
  assert len(source.splitlines()) < 400
  classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
  assert classes == ["GenerateOutput", "DrawModel"]


def test_the_t_step_loop_is_written_once():
  """One tf.while_loop for the unroll (draw_tf/model/unroll.py), one for the sequence decoder's blocks,
  and the forward and backward loops of the hand-written gradient (draw_tf/model/fused_backward.py);
  the unroll's docstring says why each of the others keeps its own."""
  counts = {}
  for module, path in _modules().items():
    with open(path) as f:
      n = f.read().count("tf.while_loop(")
    if n:
      counts[module] = n
  assert counts == {"draw_tf.model.unroll": 1, "draw_tf.model.sequence_decoder": 1, "draw_tf.model.fused_backward": 2}


def test_infer_and_call_of_the_cell_have_no_branch():
  """DrawCell picks its components in __init__; infer, draw and call are the equations alone."""
  tree = ast.parse(_source("draw_tf", "model", "cell.py"))
  cell = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DrawCell")
  methods = {n.name: n for n in cell.body if isinstance(n, ast.FunctionDef)}
  for name in ("infer", "draw", "call", "read"):
    branches = [n for n in ast.walk(methods[name]) if isinstance(n, (ast.If, ast.IfExp, ast.Match))]
    assert not branches, f"DrawCell.{name} branches at line {branches[0].lineno}"
