"""The layering of mbjax, checked: rooms and the arrows between them as docs/architecture.md's
table allows, no circle between modules, no absl flag defined at import, and the library never
importing the tools `data_prep` or `configs` (nor installing them as top-level packages)."""

import ast
import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = ('data_prep', 'configs')
ENTRY = 'entry'  # every __main__.py, the command modules and `if __name__ == '__main__':` blocks
COMMANDS = ('mbjax.main', 'mbjax.convert', 'mbjax.predict_action')

# Imports every module of mbjax named on the command line in this one process; prints those that
# failed, the flags a module of mbjax defined, and the tool modules found in sys.modules.
_IMPORTER = '''
import importlib, json, sys
from absl import flags
failed = {}
for name in sys.argv[1:]:
  try:
    importlib.import_module(name)
  except Exception as e:  # DuplicateFlagError included
    failed[name] = f'{type(e).__name__}: {e}'
by_module = flags.FLAGS.flags_by_module_dict()
defined = {m: sorted(f.name for f in fs) for m, fs in by_module.items()
           if m.split('.')[0] == 'mbjax' or m.endswith('.py')}
tools = sorted(m for m in sys.modules if m.split('.')[0] in ('data_prep', 'configs'))
print(json.dumps(dict(failed=failed, defined=defined, tools=tools)))
'''
_LISTER = '''
import json, pkgutil, mbjax
print(json.dumps(sorted(m.name for m in pkgutil.walk_packages(mbjax.__path__, 'mbjax.'))))
'''


def _python(code: str, *args: str, path: str | None = None) -> str:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  if path:
    env['PYTHONPATH'] = os.pathsep.join([path, env.get('PYTHONPATH', '')])
  done = subprocess.run([sys.executable, '-c', code, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr
  return done.stdout.strip().splitlines()[-1]


# ------------------------------------------------------------------------------ rooms and arrows


def allowed_arrows(text: str) -> dict[str, set[str]]:
  """room -> the rooms it may import, from the table under '## Rooms and the arrows' of
  docs/architecture.md ('any room' for `entry`)."""
  section = text.split('## Rooms and the arrows', 1)[1].split('\n## ', 1)[0]
  table = {}
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) != 3 or not cells[0].startswith('`'):
      continue
    table[cells[0].strip('`')] = set(re.findall(r'`(\w+)`', cells[2]))
  everything = set(table)
  return {room: everything - {room} if room == ENTRY else targets
          for room, targets in table.items()}


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def room_of(module: str) -> str:
  if module in COMMANDS or module.endswith('.__main__'):
    return ENTRY
  parts = module.split('.')
  return parts[1] if len(parts) > 1 else 'mbjax'


def imports(module: str, source: str, known: set[str]) -> list[tuple[int, str, bool]]:
  """(line, imported mbjax module, inside an `if __name__ == '__main__':` block) for every import
  of `source`, functions included; `from pkg import sub` names the submodule when it is one."""
  tree = ast.parse(source)
  in_main = set()
  for node in tree.body:
    if isinstance(node, ast.If) and ast.unparse(node.test).replace('"', "'") == \
        "__name__ == '__main__'":
      in_main.update(id(n) for n in ast.walk(node))
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      targets = [f'{node.module}.{a.name}' if f'{node.module}.{a.name}' in known else node.module
                 for a in node.names]
    else:
      continue
    found += [(node.lineno, t, id(node) in in_main) for t in targets
              if t.split('.')[0] == 'mbjax' and t != module]
  return found


def _sources() -> dict[str, str]:
  return {module_name(p): p.read_text() for p in sorted((ROOT / 'mbjax').rglob('*.py'))}


def wrong_arrows(sources: dict[str, str], allowed: dict[str, set[str]]) -> list[str]:
  """'module line N: room -> room (import)' for every import the table does not allow."""
  known, wrong = set(sources), []
  for module, source in sources.items():
    for line, target, in_main in imports(module, source, known):
      src, dst = ENTRY if in_main else room_of(module), room_of(target)
      if src == dst or dst == 'mbjax':
        continue
      if src not in allowed:
        wrong.append(f'{module}: room {src!r} is not in the table')
      elif dst not in allowed[src]:
        wrong.append(f'{module} line {line}: {src} -> {dst} (imports {target})')
  return wrong


def circles(sources: dict[str, str]) -> list[list[str]]:
  """The module cycles (strongly connected sets of more than one module) of the import graph."""
  known = set(sources)
  graph = {m: {t for _, t, _ in imports(m, s, known) if t in known} for m, s in sources.items()}
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):  # Tarjan's algorithm
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      group = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        group.append(w)
        if w == v:
          break
      if len(group) > 1:
        found.append(sorted(group))

  sys.setrecursionlimit(10_000)
  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def _table() -> dict[str, set[str]]:
  return allowed_arrows((ROOT / 'docs' / 'architecture.md').read_text())


def test_the_table_names_every_room_and_its_arrows_point_down():
  allowed = _table()
  rooms = {p.name for p in (ROOT / 'mbjax').iterdir() if p.is_dir() and (p / '__init__.py').exists()}
  assert rooms | {ENTRY, 'mbjax'} == set(allowed), 'every package of mbjax/ is a room of the table'
  for room, targets in allowed.items():
    assert targets <= set(allowed), (room, targets - set(allowed))
  below = {room: set(targets) for room, targets in allowed.items() if room != ENTRY}
  for room in below:  # no room reaches itself through the table: the arrows form a DAG
    seen, todo = set(), list(below[room])
    while todo:
      r = todo.pop()
      assert r != room, f'the table lets {room} reach itself'
      if r not in seen:
        seen.add(r)
        todo += below.get(r, ())


def test_every_import_is_an_arrow_of_the_table():
  assert wrong_arrows(_sources(), _table()) == []


def test_no_module_imports_itself_back_through_a_circle():
  assert circles(_sources()) == []


def test_a_wrong_arrow_and_a_circle_are_caught():
  sources = _sources()
  probe = 'def f():\n  from mbjax.train import loop\n  return loop\n'
  wrong = wrong_arrows({**sources, 'mbjax.models.probe': probe}, _table())
  assert wrong == ['mbjax.models.probe line 2: models -> train (imports mbjax.train.loop)']
  main_block = "if __name__ == '__main__':\n  from mbjax.train import loop\n"
  assert wrong_arrows({**sources, 'mbjax.models.probe': main_block}, _table()) == []
  looped = {'mbjax.data.a': 'from mbjax.data import b\n', 'mbjax.data.b': 'import mbjax.data.a\n'}
  assert circles({**sources, **looped}) == [['mbjax.data.a', 'mbjax.data.b']]


def test_importing_every_module_in_one_process_defines_no_flag_and_imports_no_tool(tmp_path):
  modules = json.loads(_python(_LISTER))
  assert 'mbjax.demo.__main__' in modules and 'mbjax.train.__main__' in modules
  result = json.loads(_python(_IMPORTER, *modules))
  assert result['failed'] == {}
  assert result['defined'] == {}, 'modules of mbjax defined absl flags at import'
  assert result['tools'] == [], f'mbjax imported {result["tools"]}'
  # The check sees a flag defined at import (a probe package on the path).
  (tmp_path / 'mbjax_probe.py').write_text(
      "from absl import flags\nflags.DEFINE_string('probe_flag', None, 'defined at import')\n")
  probe = json.loads(_python(_IMPORTER.replace("m.split('.')[0] == 'mbjax'",
                                               "m.split('.')[0] in ('mbjax', 'mbjax_probe')"),
                             'mbjax_probe', path=str(tmp_path)))
  assert probe['defined'] == {'mbjax_probe': ['probe_flag']}


# ------------------------------------------------------------------------------------- the tools


def _is_tool(module: str | None) -> bool:
  return module is not None and module.split('.')[0] in TOOLS


def _tool_imports(path: pathlib.Path) -> list[str]:
  """'line N: what' for each import of a tool module anywhere in a file (functions included)."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names if _is_tool(alias.name)]
    elif isinstance(node, ast.ImportFrom):
      names = [node.module] if node.level == 0 and _is_tool(node.module) else []
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
      callee = getattr(node.func, 'attr', getattr(node.func, 'id', ''))
      target = node.args[0].value
      is_import = callee in ('import_module', '__import__') and isinstance(target, str)
      names = [target] if is_import and _is_tool(target) else []
    else:
      names = []
    found += [f'line {node.lineno}: {name}' for name in names]
  return found


def test_no_mbjax_source_imports_a_tool():
  sources = sorted((ROOT / 'mbjax').rglob('*.py'))
  assert len(sources) > 30
  found = {str(p.relative_to(ROOT)): _tool_imports(p) for p in sources}
  assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_scan_sees_imports_inside_functions(tmp_path):
  path = tmp_path / 'probe.py'
  path.write_text('import os\n\n\ndef f():\n  from data_prep import builder\n  import configs.demo\n'
                  "  return importlib.import_module('data_prep.h36m')\n")
  assert _tool_imports(path) == ['line 5: data_prep', 'line 6: configs.demo',
                                 'line 7: data_prep.h36m']


def test_pyproject_installs_no_bare_tool_package():
  setuptools = pytest.importorskip('setuptools')
  config = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']
  assert 'packages' not in config or isinstance(config['packages'], dict), 'explicit package list'
  assert not config.get('package-dir'), 'a package-dir mapping would need checking here'
  find = config['packages']['find']
  finder = (setuptools.find_namespace_packages if find.get('namespaces', True)
            else setuptools.find_packages)
  packages = finder(where=str(ROOT / find.get('where', ['.'])[0]),
                    include=find.get('include', ['*']), exclude=find.get('exclude', ()))
  assert 'mbjax' in packages and 'mbjax.data' in packages and 'mbjax.demo' in packages
  assert sorted({p.split('.')[0] for p in packages}) == ['mbjax'], packages
  assert not [key for key in config.get('package-data', {}) if _is_tool(key)]
