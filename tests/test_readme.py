"""Every README line works as printed: the code blocks are read from README.md when the test runs.

Each command of a bash block and each python block either runs (the slow test: on the tiny inputs
of SUBSTITUTIONS, in README order, with no warning on stderr) or is listed in NOT_RUN with the
reason (data or weights we cannot ship, minutes of benchmark, installing packages). A command
that matches neither runs, so a new README line is tested unless someone says why not.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import readme_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFICIAL_BIN = ('an official MotionBERT .bin (published by the official repository, README '
                '"Weights"; not shipped)')
# (regular expression searched in a command or python block, why it is not run here)
NOT_RUN = (
    (r'^python3 -m venv', 'the quick start: .ci/run runs its two lines as printed '
                          '(test_ci_runs_the_quick_start_as_printed)'),
    (r'^pip install', 'installs packages (.ci/run installs the quick start; [gpu] and [tpu] need '
                      'an accelerator)'),
    (r'--task action', 'the action demo (9 min): tests/test_action_demo.py runs it shortened'),
    (r'checkpoint/(pretrain|pose3d|action|mesh)/|best_epoch\.bin|latest_epoch\.bin', OFFICIAL_BIN),
    (r'ckpt/', 'a convert directory of ' + OFFICIAL_BIN),
    (r'data/motion3d|\bh36m --source|runs/ft_h36m', 'Human3.6M (MotionBERT\'s preprocessed pkl; '
                                                    'licence)'),
    (r'AMASS', 'AMASS (licence)'),
    (r'posetrack|InstaVariety', 'PoseTrack / InstaVariety (not shipped)'),
    (r'ntu60|ntu120|NTU', 'NTU RGB+D (pyskl\'s HRNet pkl; not shipped)'),
    (r'data/mesh|mesh_\$d|configs/mesh\.py', 'SMPL and the mesh datasets (licence)'),
    (r'configs/pretrain\.py:(release|lite)', 'pretraining on AMASS + Human3.6M'),
    (r'my_clips|runs/my_actions|clip\.json', 'your own labelled action clips'),
    (r'poses\.npy|^python -m mbjax\.infer alphapose-results', 'your own keypoint file and an '
     'official .bin'),
    (r'shared/data/video|my_frames/', 'real footage from ../shared, BlazePose on every frame '
                                      '(minutes): tests/test_video_blazepose.py runs it'),
    (r'^python -m mbjax\.bench', 'a benchmark (minutes at the sizes printed): tests/test_bench.py '
                                 'runs each bench small'),
    (r'^python -m mbjax\.(sweep|scaling)', 'the scaling sweep (11 min) and its fit: '
                                           'tests/test_sweep.py and test_scaling_fit.py'),
)
# What the runnable commands and python blocks get instead of the README's paths (and why).
SUBSTITUTIONS = (
    (r'\bruns/demo\b(?!_)', '{demo}', 'a demo workdir of 4 steps of a smaller model'),
    (r'(?<![\w/])out/', '{tmp}/out/', 'outputs in a temporary folder'),
    (r'\bmy_bvh_folder\b', 'data_prep/assets/mocap', 'the shipped recordings as "your" BVH'),
    (r'--data_dir data/tfds', '--data_dir {tmp}/tfds', 'datasets in a temporary folder'),
    (r'^python ', '{python} ', 'this interpreter'),
)
TINY_DEMO = ('--config.total_steps=4', '--config.batch_size=8', '--config.checkpoint.every_steps=2',
             '--config.model.dim_feat=16', '--config.model.dim_rep=16', '--config.model.depth=1',
             '--config.model.num_heads=2')
WARNING = re.compile(r'^(W\d{4} |E\d{4} |WARNING|.*Warning: ).*$', re.M)
# (command, warning) pairs that are what the user needs to hear (searched as regular expressions).
EXPECTED_WARNINGS = (
    # jumping_jacks.bvh (207 frames at 50 fps) is shorter than the builder's default 243-frame clip
    (r'data_prep\.build mocap', r'jumping_jacks\.bvh: 207 frames at 50 fps, stretched to 243'),
)


def reason(text: str) -> str | None:
  """Why a command or python block is not run, or None when it runs."""
  for pattern, why in NOT_RUN:
    if re.search(pattern, text, re.M):
      return why
  return None


def steps() -> list[tuple[readme_blocks.Block, str]]:
  """(block, command or python source) of every README block, in order; listings have none."""
  out = []
  for block in readme_blocks.blocks():
    if block.lang == 'bash':
      out += [(block, command) for command in readme_blocks.commands(block)]
    elif block.lang == 'python':
      out.append((block, block.text))
    elif block.lang:
      raise ValueError(f'README.md:{block.line}: a {block.lang!r} block: run it or list it here')
  return out


def substitute(text: str, **values) -> str:
  for pattern, replacement, _ in SUBSTITUTIONS:
    text = re.sub(pattern, replacement.format(**values), text, flags=re.M)
  return text


def test_every_block_is_run_or_listed_with_its_reason():
  blocks = readme_blocks.blocks()
  listings = [b for b in blocks if not b.lang]
  assert all(b.section == 'Layout' or 'How mbjax' in b.text for b in listings), listings
  run = [text for _, text in steps() if reason(text) is None]
  not_run = [text for _, text in steps() if reason(text) is not None]
  for text in run:
    assert text.startswith('python ') or text.startswith('import'), text
  # The blocks the issue names run: the demo's, infer, export, the ONNX call, the model.
  joined = '\n'.join(run)
  for needed in ('mbjax.evaluate --checkpoint=runs/demo', 'mbjax.checkpoint check runs/demo',
                 '--format=onnx --out=out/pose.onnx', "InferenceSession('out/pose.onnx'",
                 "dstformer_from_variant('release')", 'mbjax.infer data_prep/assets/wild'):
    assert needed in joined, needed
  assert len(run) >= 10 and len(not_run) >= 20
  # A command on the demo workdir runs, except the real-footage video ones (minutes of BlazePose:
  # tests/test_video_blazepose.py runs that path on the same footage).
  assert not any(re.search(r'runs/demo\b(?!_)', t) for t in not_run
                 if 'venv' not in t and reason(t) != reason('shared/data/video'))


def test_ci_runs_the_quick_start_as_printed():
  lines = readme_blocks.quickstart()
  assert len(lines) == 2
  install = 'pip install -q -r requirements.txt -e . && pip install -q --no-deps -r ' \
            'requirements-no-deps.txt'
  assert lines[0].endswith(f'{install} && python -m mbjax.demo --workdir runs/demo')
  assert lines[1].endswith(f'{install} && python -m pytest -q')
  done = subprocess.run(['bash', str(ROOT / '.ci' / 'run')], env=dict(os.environ,
                        MBJAX_CI_PRINT='1'), capture_output=True, text=True, check=True)
  assert done.stdout.splitlines() == lines


def test_commands_split_like_the_shell():
  block = readme_blocks.Block('bash', 'for d in a b; do\n  python -m x --s=$d \\\n    --t=1\n'
                              'done\n# a comment\npython -m y   # trailing\n', 1, 'S')
  assert readme_blocks.commands(block) == ['for d in a b; do python -m x --s=$d --t=1; done',
                                           'python -m y   # trailing']


@pytest.fixture(scope='module')
def demo_workdir(tmp_path_factory) -> pathlib.Path:
  """runs/demo as the quick start makes it, with the TINY_DEMO overrides."""
  workdir = tmp_path_factory.mktemp('readme') / 'demo'
  done = subprocess.run([sys.executable, '-m', 'mbjax.demo', '--workdir', str(workdir),
                         *TINY_DEMO], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  assert not WARNING.search(done.stderr), done.stderr
  return workdir


def _run(text: str, is_python: bool, **values) -> subprocess.CompletedProcess:
  text = substitute(text, **values)
  argv = [sys.executable, '-c', text] if is_python else ['bash', '-euo', 'pipefail', '-c', text]
  return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _unexpected_warnings(command: str, stderr: str) -> list[str]:
  allowed = [w for c, w in EXPECTED_WARNINGS if re.search(c, command)]
  return [m.group(0) for m in WARNING.finditer(stderr)
          if not any(re.search(w, m.group(0)) for w in allowed)]


@pytest.mark.slow
def test_every_runnable_block_works_as_printed(demo_workdir, tmp_path):
  # Relative paths, as a user types them (runs/demo -> ../../tmp/.../demo from the checkout).
  values = dict(demo=os.path.relpath(demo_workdir, ROOT), tmp=os.path.relpath(tmp_path, ROOT),
                python=sys.executable)
  failed = []
  for block, text in steps():
    if reason(text) is not None:
      continue
    done = _run(text, block.lang == 'python', **values)
    where = f'README.md:{block.line} ({block.section}): {text.strip()[:90]}'
    if done.returncode != 0:
      failed.append(f'{where}\n  exit {done.returncode}: {done.stderr.strip()[-1500:]}')
    elif _unexpected_warnings(text, done.stderr):
      failed.append(f'{where}\n  warns: {_unexpected_warnings(text, done.stderr)}')
  assert not failed, '\n'.join(failed)


def test_a_warning_fails_a_command_unless_it_is_expected_there():
  stderr = ('I1206 a.py:1] fine\nW1206 mocap.py:250] x/jumping_jacks.bvh: 207 frames at 50 fps, '
            'stretched to 243 frames\nW1206 b.py:2] other\n')
  assert _unexpected_warnings('python -m data_prep.build mocap --source x', stderr) == [
      'W1206 b.py:2] other']
  assert len(_unexpected_warnings('python -m mbjax.infer x', stderr)) == 2
