"""Every reference to the maintainers' notes names a file and a heading that exist.

Code comments, docstrings, gin configs, README.md, `.ci/run` and the notes themselves cite a
section as `docs/<file>.md, "Heading"` (BUILD_NOTES.md is the index of docs/). A quoted name
matches a heading of that file when it equals it or is its start, followed by ":", "," or " (":
`"The engine"` names "The engine: one loop over `strategy.run` for every strategy". Pure text:
nothing is imported, well under a second.
"""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIXES = (".py", ".gin", ".md")
EXTRA_FILES = (os.path.join(".ci", "run"),)
# A notes file, then optionally a quoted heading (across a line break and a comment marker).
REFERENCE = re.compile(
    r'((?:docs/[\w/.-]+?\.md)|BUILD_NOTES(?:\.md)?)\b(?:,?[ \t]*(?:\n[ \t]*#?[ \t]*)?"([^"]+)")?')


def headings(path):
  """The headings of a Markdown file, outside fenced code blocks."""
  found, fence = [], False
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.startswith("```"):
        fence = not fence
      elif not fence:
        m = re.match(r"#{1,6} (.+?)\s*$", line)
        if m:
          found.append(m.group(1))
  return found


def names_heading(name, heads):
  """True when `name` is one of `heads` or the start of one, up to ':', ',' or ' ('."""
  for h in heads:
    if h == name or (h.startswith(name) and h[len(name):][:1] in (":", ",")) or (
        h.startswith(name + " (")):
      return True
  return False


def source_files(root):
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("build", "runs")
                   and not d.endswith(".egg-info") and d != "__pycache__"]
    for name in filenames:
      if name.endswith(SUFFIXES):
        yield os.path.join(dirpath, name)
  for extra in EXTRA_FILES:
    if os.path.exists(os.path.join(root, extra)):
      yield os.path.join(root, extra)


def broken_references(root):
  """(file, line, reference, why) for each reference that names no existing file or heading."""
  broken, cache = [], {}
  for path in source_files(root):
    if os.path.abspath(path) == os.path.abspath(__file__):
      continue
    with open(path, encoding="utf-8") as f:
      text = f.read()
    for m in REFERENCE.finditer(text):
      target, name = m.group(1), m.group(2)
      line = text.count("\n", 0, m.start()) + 1
      where = os.path.relpath(path, root)
      if not target.startswith("docs/"):
        target = "BUILD_NOTES.md"
      full = os.path.join(root, target)
      if not os.path.isfile(full):
        broken.append((where, line, m.group(0), "no such file"))
        continue
      if name is None:
        continue
      name = re.sub(r"\s*\n\s*#?\s*", " ", name).strip()
      if full not in cache:
        cache[full] = headings(full)
      if not names_heading(name, cache[full]):
        broken.append((where, line, m.group(0), f"no heading {name!r} in {target}"))
  return broken


def test_every_notes_reference_names_an_existing_heading():
  broken = broken_references(ROOT)
  assert not broken, "\n".join(f"{f}:{n}: {ref!r}: {why}" for f, n, ref, why in broken)


@pytest.mark.parametrize("text, ok", [
    ('# see docs/a.md, "The engine"\n', True),
    ('# see docs/a.md, "The engine: one loop"\n', False),
    ('# see docs/a.md, "Input sharding"\n', True),
    ('# (docs/a.md,\n# "Input sharding")\n', True),
    ('"""See docs/a.md, "Cost"."""\n', True),
    ('# see docs/a.md\n', True),
    ('# see docs/a.md, "The engin"\n', False),
    ('# see docs/a.md, "Input"\n', False),
    ('# see docs/a.md, "Sampling"\n', False),
    ('# see docs/b.md, "The engine"\n', False),
    ('# see docs/b.md\n', False),
    ('# see BUILD_NOTES, "The engine"\n', False),
])
def test_the_checker_tells_an_existing_heading_from_a_wrong_one(tmp_path, text, ok):
  os.makedirs(tmp_path / "docs")
  (tmp_path / "docs" / "a.md").write_text(
      "# A\n## The engine: one loop over `strategy.run`\n### Input sharding\n"
      "```\n# Sampling (inside a code block, not a heading)\n```\n#### Cost (2026-12-06)\n")
  (tmp_path / "BUILD_NOTES.md").write_text("# Index\n")
  (tmp_path / "code.py").write_text(text)
  assert (not broken_references(str(tmp_path))) == ok
