"""The README's set-up commands and Python example are true as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read()


def _section(text, heading):
  """The text from ``heading`` to the next ``## `` heading."""
  start = text.index(heading)
  end = text.find("\n## ", start + len(heading))
  return text[start:end if end >= 0 else None]


def test_readme_python_example_runs_as_written(capsys):
  """Runs the block after <!-- example --> exactly as a user would paste it."""
  match = re.search(r"<!-- example -->\s*```python\n(.*?)```", _readme(), re.S)
  assert match, "README.md has no <!-- example --> python block"
  exec(compile(match.group(1), "README.md example", "exec"), {"__name__": "__main__"})
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


def test_readme_phone_example_runs_as_written(tiny_export, capsys, monkeypatch):
  """The "Use it on a phone" example, run in an export folder as the README says."""
  match = re.search(r"<!-- phone-example -->\s*```python\n(.*?)```", _readme(), re.S)
  assert match, "README.md has no <!-- phone-example --> python block"
  monkeypatch.chdir(tiny_export.out)
  exec(compile(match.group(1), "README.md phone example", "exec"), {"__name__": "__main__"})
  lines = capsys.readouterr().out.splitlines()
  assert lines == ["(4, 12, 10, 1) True True", "(4, 4, 12, 10, 1)", "(4, 4, 3)", "(2, 12, 10, 1)"]

def test_the_main_setup_command_trains_on_real_mnist_evaluates_and_draws():
  """The first command installs, trains configs/mnist_quick.py and runs draw-eval on it."""
  text = _readme()
  setup = _section(text, "## Set-up")
  first = re.findall(r"```\n(.*?)\n```", setup, re.S)[0]
  assert "draw-train --config=configs/mnist_quick.py --workdir=runs/quick" in first
  assert first.endswith("draw-eval --workdir=runs/quick")
  assert os.path.exists(os.path.join(ROOT, "configs", "mnist_quick.py"))
  for picture in re.findall(r'src="(docs/[^"]+)"', text):
    path = os.path.join(ROOT, picture)
    assert os.path.exists(path) and os.path.getsize(path) < 300_000, picture
