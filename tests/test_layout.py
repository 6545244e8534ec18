"""The package layout: dependencies among draw_tf/ and export/ run one way (no import cycle).

Every ``.py`` file of the two packages is parsed with :mod:`ast` (nothing is
imported); an edge ``a -> b`` is any import of project module ``b`` in module
``a``, at the top level or inside a function. ``from P import X`` is an import of
``P.X`` when that is a module, else of ``P`` (``P/__init__``). Relative imports
are resolved. A package ``__init__`` importing its own submodules is the normal
way down and counts like any other edge; a cycle through it still fails.
"""

import ast
import os

PACKAGES = ("draw_tf", "export")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules() -> dict:
  """Module name -> file path for every .py file in :data:`PACKAGES`."""
  modules = {}
  for package in PACKAGES:
    for folder, _, names in os.walk(os.path.join(ROOT, package)):
      for name in names:
        if not name.endswith(".py"):
          continue
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, ROOT)[:-len(".py")].split(os.sep)
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
  assert {"draw_tf", "draw_tf.model", "export", "export.sampler", "export.contract"} <= set(real)
  assert "export.contract" in real["export.sampler"]
  assert "export.sampler" in real["export.export_lib"]


def test_no_import_cycle_among_draw_tf_and_export():
  """No module imports itself through others, not even from inside a function."""
  graph = import_graph()
  cycle = _find_cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_export_is_imported_by_nothing_in_draw_tf():
  """Dependencies run one way: the library never imports the export package."""
  graph = import_graph()
  back = {m: sorted(d for d in deps if d.split(".")[0] == "export")
          for m, deps in graph.items() if m.split(".")[0] == "draw_tf"}
  assert not {m: d for m, d in back.items() if d}


def _source(*parts) -> str:
  with open(os.path.join(ROOT, *parts)) as f:
    return f.read()


def test_model_py_holds_the_model_only():
  """The redesign's budget: DrawModel alone, under 400 lines; the cell, layers and loop elsewhere."""
  source = _source("draw_tf", "model.py")
  assert len(source.splitlines()) < 400
  classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
  assert classes == ["GenerateOutput", "DrawModel"]


def test_the_t_step_loop_is_written_once():
  """One tf.while_loop for the unroll (draw_tf/unroll.py), one for the fused sampler's blocks,
  and the forward and backward loops of the hand-written gradient (draw_tf/fused.py, checked
  against the unroll by tests/test_fused.py)."""
  counts = {}
  for module, path in _modules().items():
    with open(path) as f:
      n = f.read().count("tf.while_loop(")
    if n:
      counts[module] = n
  assert counts == {"draw_tf.unroll": 1, "draw_tf.sampling": 1, "draw_tf.fused": 2}


def test_infer_and_call_of_the_cell_have_no_branch():
  """DrawCell picks its components in __init__; infer, draw and call are the equations alone."""
  tree = ast.parse(_source("draw_tf", "cell.py"))
  cell = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DrawCell")
  methods = {n.name: n for n in cell.body if isinstance(n, ast.FunctionDef)}
  for name in ("infer", "draw", "call", "read"):
    branches = [n for n in ast.walk(methods[name]) if isinstance(n, (ast.If, ast.IfExp, ast.Match))]
    assert not branches, f"DrawCell.{name} branches at line {branches[0].lineno}"
