"""One-way layering: the `mbjax` library never imports the tools `data_prep` or `configs`, and the
package installs neither as a top-level package."""

import ast
import json
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = ('data_prep', 'configs')

# Imports every module of mbjax named on the command line; prints what it imported, the modules
# to import in a fresh process (their absl flags clash with a module's already imported here:
# mbjax.main, mbjax.demo.__main__ and mbjax.evaluate.__main__ all define --config), and the tool
# modules found in sys.modules.
_IMPORTER = '''
import importlib, json, sys
from absl import flags
imported, retry = [], []
for name in sys.argv[1:]:
  try:
    importlib.import_module(name)
    imported.append(name)
  except flags.DuplicateFlagError:
    retry.append(name)
tools = sorted(m for m in sys.modules if m.split('.')[0] in ('data_prep', 'configs'))
print(json.dumps(dict(imported=imported, retry=retry, tools=tools)))
'''
_LISTER = '''
import json, pkgutil, mbjax
print(json.dumps(sorted(m.name for m in pkgutil.walk_packages(mbjax.__path__, 'mbjax.'))))
'''


def _python(code: str, *args: str) -> str:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-c', code, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr
  return done.stdout.strip().splitlines()[-1]


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


def test_importing_every_mbjax_module_imports_no_tool():
  modules = json.loads(_python(_LISTER))
  assert 'mbjax.demo.__main__' in modules and 'mbjax.data.records' in modules
  imported, pending = [], modules
  while pending:
    result = json.loads(_python(_IMPORTER, *pending))
    assert result['tools'] == [], f'mbjax imported {result["tools"]} (while importing {pending})'
    assert result['imported'], f'no progress importing {pending}'
    imported += result['imported']
    pending = result['retry']
  assert sorted(imported) == modules


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
