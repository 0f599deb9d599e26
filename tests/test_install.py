"""The README's install gives everything the README documents: every pinned package is installed
at its pin, the optional ones (ONNX export) included, so no test skips for a missing package."""

import importlib.metadata
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PIN_FILES = ('requirements.txt', 'requirements-no-deps.txt')


def pins(path: pathlib.Path) -> dict[str, str]:
  """{package: version} of the `name==version` lines of a requirements file."""
  found = {}
  for line in path.read_text().splitlines():
    match = re.match(r'^([A-Za-z0-9_.\-]+)==([^\s;#]+)', line.strip())
    if match:
      found[match.group(1)] = match.group(2)
  return found


def test_every_pinned_package_is_installed_at_its_pin():
  wrong = []
  for name in PIN_FILES:
    for package, version in pins(ROOT / name).items():
      try:
        installed = importlib.metadata.version(package)
      except importlib.metadata.PackageNotFoundError:
        installed = 'not installed'
      if installed != version:
        wrong.append(f'{package}=={version} ({name}): {installed}')
  assert not wrong, ('install as the README says (pip install -r requirements.txt -e . && pip '
                     'install --no-deps -r requirements-no-deps.txt):\n' + '\n'.join(wrong))


def test_the_no_deps_file_pins_the_onnx_exporter_and_the_pose_models():
  assert pins(ROOT / 'requirements-no-deps.txt') == {'jax2onnx': '0.17.1', 'mediapipe': '0.10.21'}
  assert not {'jax2onnx', 'mediapipe'} & set(pins(ROOT / 'requirements.txt'))
