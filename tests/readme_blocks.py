"""The code blocks of README.md, read from the file itself: what tests/test_readme.py runs and what
.ci/run runs (`python tests/readme_blocks.py quickstart` prints the quick start's command lines)."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'


@dataclasses.dataclass(frozen=True)
class Block:
  lang: str  # 'bash', 'python', '' (a listing)
  text: str
  line: int  # where its opening fence is, 1-based
  section: str  # the heading above it


def blocks(path: pathlib.Path = README) -> list[Block]:
  """Every fenced block of a Markdown file, in order."""
  found, section, lang, start, body = [], '', None, 0, []
  for number, line in enumerate(path.read_text().splitlines(), 1):
    if lang is None and line.startswith('#'):
      section = line.lstrip('#').strip()
    elif lang is None and line.startswith('```'):
      lang, start, body = line[3:].strip(), number, []
    elif lang is not None and line.startswith('```'):
      found.append(Block(lang, '\n'.join(body) + '\n', start, section))
      lang = None
    elif lang is not None:
      body.append(line)
  if lang is not None:
    raise ValueError(f'{path}:{start}: a code block is never closed')
  return found


def commands(block: Block) -> list[str]:
  """The shell commands of a bash block: comment lines dropped, backslash continuations joined,
  a `for ... done` loop kept whole."""
  out, pending = [], ''
  for line in block.text.splitlines():
    if not pending and (not line.strip() or line.lstrip().startswith('#')):
      continue
    pending += line.strip() if pending else line.rstrip()
    if pending.endswith('\\'):
      pending = pending[:-1].rstrip() + ' '
      continue
    if pending.lstrip().startswith('for ') and not re.search(r'\bdone\b', pending):
      pending += '; '
      continue
    out.append(pending.strip().replace('do; ', 'do '))
    pending = ''
  return out


def quickstart() -> list[str]:
  """The command lines of the first block under "Quick start"."""
  chosen = [b for b in blocks() if b.section == 'Quick start' and b.lang == 'bash']
  if not chosen:
    raise ValueError(f'{README}: no bash block under "## Quick start"')
  return commands(chosen[0])


if __name__ == '__main__':
  if sys.argv[1:] != ['quickstart']:
    sys.exit('usage: python tests/readme_blocks.py quickstart')
  print('\n'.join(quickstart()))
