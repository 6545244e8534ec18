"""The README and the docs pages are true as written, and every link in them resolves.

README.md is a short page (at most 150 lines): set-up, a Python example, the table of
experiments, the file map, links. The details live in docs/*.md, each linked from it.
"""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
README_MAX_LINES = 150


def _read(path):
  with open(path) as f:
    return f.read()


def _readme():
  return _read(README)


def _doc(name):
  return _read(os.path.join(ROOT, "docs", name))


def _section(text, heading):
  """The text from ``heading`` to the next ``## `` heading."""
  start = text.index(heading)
  end = text.find("\n## ", start + len(heading))
  return text[start:end if end >= 0 else None]


def _without_code(text):
  """``text`` with its fenced code blocks blanked (a ``#`` there is no heading)."""
  return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _links(text):
  """Every link target of a Markdown page: ``[text](target)`` and ``src="target"``."""
  prose = _without_code(text)
  return re.findall(r"\]\(([^)\s]+)\)", prose) + re.findall(r'src="([^"]+)"', prose)


def _anchors(text):
  """GitHub's anchors of a page's headings (lower case, punctuation dropped, spaces to -)."""
  anchors, seen = set(), {}
  for heading in re.findall(r"^#+ (.*)$", _without_code(text), re.M):
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f"{slug}-{count}")
  return anchors


def _run_example(text, marker, name):
  match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
  assert match, f"{name} has no <!-- {marker} --> python block"
  exec(compile(match.group(1), f"{name} {marker}", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("page", ["README.md", "docs/python_api.md"])
def test_python_example_runs_as_written(page, capsys):
  """Runs the block after <!-- example --> exactly as a user would paste it."""
  _run_example(_read(os.path.join(ROOT, page)), "example", page)
  out = capsys.readouterr().out
  assert "nll_bound" in out
  assert "(16, 28, 28, 1)" in out


def test_readme_begins_with_two_setup_commands_and_marks_the_test_command():
  text = _readme()
  setup = _section(text, "## Set-up")
  blocks = re.findall(r"```\n(.*?)\n```", setup, re.S)
  assert len(blocks) == 2, blocks
  assert all("pip install -e" in b for b in blocks)
  assert "<!-- test-command -->" in setup and "pytest" in blocks[1]


def test_readme_test_command_is_the_one_ci_runs():
  """.ci/run reads the line after <!-- test-command --> and compares it with its own copy."""
  command = re.search(r"<!-- test-command -->\s*```\n(.*?)\n```", _readme(), re.S).group(1)
  ci = _read(os.path.join(ROOT, ".ci", "run"))
  assert f"README_TEST_CMD='{command}'" in ci


def test_phone_example_runs_as_written(tiny_export, capsys, monkeypatch):
  """The "Use it on a phone" example of docs/export.md, run in an export folder as it says."""
  monkeypatch.chdir(tiny_export.out)
  _run_example(_doc("export.md"), "phone-example", "docs/export.md")
  lines = capsys.readouterr().out.splitlines()
  assert lines == ["(4, 12, 10, 1) True True", "(4, 4, 12, 10, 1)", "(4, 4, 4)", "(2, 12, 10, 1)"]


def test_the_main_setup_command_trains_on_real_mnist_evaluates_and_draws():
  """The first command installs, trains configs/mnist_quick.py and runs draw-eval on it."""
  setup = _section(_readme(), "## Set-up")
  first = re.findall(r"```\n(.*?)\n```", setup, re.S)[0]
  assert "draw-train --config=configs/mnist_quick.py --workdir=runs/quick" in first
  assert first.endswith("draw-eval --workdir=runs/quick")
  assert os.path.exists(os.path.join(ROOT, "configs", "mnist_quick.py"))


@pytest.mark.parametrize("page", [README] + DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_pictures_exist_and_are_small(page):
  for picture in re.findall(r'src="([^"]+)"', _read(page)):
    path = os.path.join(os.path.dirname(page), picture)
    assert os.path.exists(path) and os.path.getsize(path) < 300_000, picture


def test_readme_is_short():
  lines = _readme().count("\n")
  assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/*.md"


@pytest.mark.parametrize("page", [README] + DOCS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves(page):
  """Files and, for Markdown targets, the heading anchor."""
  broken = []
  for target in _links(_read(page)):
    if re.match(r"[a-z]+:", target):
      continue  # https:, mailto:
    path, _, anchor = target.partition("#")
    path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
    if not os.path.exists(path):
      broken.append(target)
    elif anchor and path.endswith(".md") and anchor not in _anchors(_read(path)):
      broken.append(target)
  assert not broken, f"{os.path.relpath(page, ROOT)}: broken links {broken}"


def test_every_docs_page_is_one_link_from_the_readme():
  linked = {os.path.normpath(os.path.join(ROOT, t.partition("#")[0])) for t in _links(_readme())}
  assert not [os.path.relpath(p, ROOT) for p in DOCS if p not in linked]


def test_experiment_figures_come_from_the_linked_pages():
  """Each figure (x.yz) of the README's experiments table stands in the page the row links."""
  table = _section(_readme(), "## Experiments")
  rows = [r for r in table.splitlines() if r.startswith("| `") or r.startswith("| research")]
  assert len(rows) >= 7, rows
  for row in rows:
    link = re.search(r"\]\((docs/[^)#]+)", row).group(1)
    page = _read(os.path.join(ROOT, link))
    for figure in re.findall(r"\d+\.\d\d\b", row):
      assert figure in page, (figure, link)
