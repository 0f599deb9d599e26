"""Official MotionBERT checkpoints in and out, from the command line.

  python -m mbjax.convert OFFICIAL.bin OUT_DIR --model pose --variant release
  python -m mbjax.convert --to-official OUT_DIR BACK.bin
  python -m mbjax.convert MESH.bin OUT_DIR --model mesh --smpl_dir data/mesh

The formats themselves live in `mbjax.checkpoint` (`official`: the official state dict and its
mapping; `converted`: the directories this command writes; `loader`: the one weight loader).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Sequence

from absl import flags

from mbjax.checkpoint import converted, loader, official
from mbjax.files import atomic


# The flags live in their own FlagValues, so that importing this module defines no global flag
# (`--variant`, `--model` would clash with a program's own); parse_flags lends them to absl's
# FLAGS for the command line only.
_FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_enum('model', 'pose', official.MODELS, 'Which official model the .bin holds.',
                           flag_values=_FLAGS)
_VARIANT = flags.DEFINE_enum('variant', 'release', ('release', 'lite'),
                             'DSTformer size of the checkpoint.', flag_values=_FLAGS)
_TO_OFFICIAL = flags.DEFINE_bool('to-official', False,
                                 'Convert an mbjax.convert directory SRC back to an official '
                                 '.bin DST.', flag_values=_FLAGS)
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace a non-empty output directory (or, '
                               'with --to-official, an existing .bin).', flag_values=_FLAGS)
_SMPL_DIR = flags.DEFINE_string('smpl_dir', None, 'The SMPL folder of a mesh model (official '
                                'data_root: SMPL_NEUTRAL.pkl and its extras); --to-official '
                                "defaults to the config's head.smpl_dir.", flag_values=_FLAGS)
_PROGRAM = 'mbjax.convert'


def parse_flags(argv: Sequence[str]) -> list[str]:
  """`app.run`'s flags_parser: the flags above and absl's own from `argv` (program name first).

  Each call starts from the flags' defaults. A malformed flag (e.g. an unknown --model) raises
  flags.Error.

  Returns:
    The positional arguments, program name first.
  """
  for name in _FLAGS:
    if name not in flags.FLAGS:
      flags.FLAGS[name] = _FLAGS[name]
      flags.FLAGS.register_flag_by_module(sys.argv[0], _FLAGS[name])  # listed by --help
    _FLAGS[name].unparse()
  rest = flags.FLAGS(list(argv))  # a flags.Error: mbjax.cli reports it in one line (status 2)
  _FLAGS.mark_as_parsed()
  return rest


def main(argv: Sequence[str]) -> int:
  """absl main: `argv` is [program, SRC, DST] once `parse_flags` has read the flags.

  A wrong argument count exits with a one-line message; unreadable or mismatched checkpoints
  raise errors that `mbjax.cli` reports in one line.
  """
  if len(argv) != 3:
    sys.exit(f'{_PROGRAM}: expected 2 arguments, SRC and DST, got {len(argv) - 1}: '
             f'{list(argv[1:])} (see --help)')
  src, dst = argv[1:]
  if _TO_OFFICIAL.value:
    to_official(src, dst, _SMPL_DIR.value, overwrite=_OVERWRITE.value)
  else:
    _from_official(src, dst, _MODEL.value, _VARIANT.value, overwrite=_OVERWRITE.value,
                   smpl_dir=_SMPL_DIR.value)
  return 0


def _vertex_ids_of(state_dict: dict) -> dict:
  """{'smpl_vertex_ids': name -> vertex} from a mesh state dict's extra_joints_idxs (kept in a
  convert directory's config.json so that --to-official writes the same buffer back)."""
  key = official.SMPL_PREFIX + 'vertex_joint_selector.extra_joints_idxs'
  sd = {official.strip_module(k): v for k, v in state_dict.items()}
  if key not in sd or sd[key].shape != (len(official.SMPLH_EXTRA_JOINT_NAMES),):
    return {}
  return {'smpl_vertex_ids': dict(zip(official.SMPLH_EXTRA_JOINT_NAMES, (int(i) for i in sd[key])))}


def _smpl_dir_of(config: dict) -> str | None:
  """The `head.smpl_dir` of a convert directory's or a trainer workdir's config.json."""
  head = config.get('head') if isinstance(config.get('model'), str) else (
      (config.get('model') or {}).get('head'))
  return (head or {}).get('smpl_dir')


def _load_smpl(smpl_dir: str | None, why: str):
  from mbjax.models.smpl import SMPL
  if not smpl_dir:
    raise ValueError(f'{why}: pass --smpl_dir, the folder with SMPL_NEUTRAL.pkl and its extras '
                     '(J_regressor_h36m_correct.npy, J_regressor_extra.npy, '
                     'smpl_mean_params.npz), the official data_root')
  return SMPL.from_file(smpl_dir)


def to_official(src: str, dst: str, smpl_dir: str | None = None, *,
                overwrite: bool = False) -> None:
  """An mbjax.convert directory or a trainer workdir (latest checkpoint) -> official .bin.

  A mesh model's SMPL buffers come from `smpl_dir`, else from the config's `head.smpl_dir`. `dst`
  is written under a temporary name and renamed into place; an existing one is replaced only with
  `overwrite`.
  """
  atomic.check_new(dst, overwrite)
  config_path = os.path.join(src, 'config.json')
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f'{config_path} not found: SRC must be an mbjax.convert output or a '
                            'trainer workdir')
  with open(config_path) as f:
    config = json.load(f)
  model = converted.model_kind(config)
  smpl = None
  if model == 'mesh':
    smpl = _load_smpl(smpl_dir or _smpl_dir_of(config), f'{src} holds a mesh model')
  variables = _load_weights(src)
  official.save_official(variables, model, dst, smpl=smpl, vertex_ids=config.get('smpl_vertex_ids'))
  print(f'wrote {dst} ({model})')


def _load_weights(src: str) -> dict:
  """`loader.load_variables(src)`, an unreadable orbax checkpoint (tensorstore's page-long error)
  said in one line: the folder and what is missing or damaged in it."""
  try:
    return loader.load_variables(src)
  except Exception as e:  # pylint: disable=broad-except  # orbax raises bare Exception too
    text = ' '.join(str(x) for x in (e, e.__cause__, e.__context__) if x is not None)
    if not re.search(r'tensorstore|TensorStore|OCDBT|_METADATA', text):
      raise
    raise ValueError(f'{src}: the weights cannot be read ({_damage(src, text)}); the folder is '
                     'incomplete or damaged: convert or train it again') from e


def _damage(src: str, text: str) -> str:
  """What is missing or damaged in the checkpoint folder `src`, from the folder and the error."""
  variables = os.path.join(src, 'variables')
  if os.path.isdir(variables):
    expected = ['_METADATA', 'manifest.ocdbt', 'd'] + [
        f'{n}/d' for n in sorted(os.listdir(variables)) if n.startswith('ocdbt.process_')]
    missing = [f'variables/{n}' for n in expected if not os.path.exists(os.path.join(variables, n))]
    if missing:
      return f'missing {", ".join(missing)}'
  tensor = re.search(r'(?:reading|at) "([\w.]+)/', text)
  kind = 'missing' if 'NOT_FOUND' in text or 'does not exist' in text else 'damaged'
  file = re.search(r'local file "([^"]+)"', text)
  where = f' in {file.group(1)}' if file else ''
  return f'{kind} data of {tensor.group(1) if tensor else "a tensor"}{where}'


def _from_official(src: str, dst: str, model: str, variant: str, *, overwrite: bool,
                   smpl_dir: str | None = None) -> None:
  converted.check_target(dst, overwrite)  # before the (slow) reading of a large .bin
  state_dict = official.load_official(src)
  smpl, head = None, {}
  if model == 'mesh':
    smpl = _load_smpl(smpl_dir, '--model mesh')
    head['smpl_dir'] = os.path.abspath(smpl_dir)
  try:
    config = converted.config_from_state_dict(state_dict, model, variant, **head)
    if smpl is not None:
      official.check_smpl_buffers(state_dict, smpl)
      config.update(_vertex_ids_of(state_dict))
  except ValueError as e:
    raise ValueError(f'{src}: {e}') from None
  variables = official.official_to_variables(state_dict, model)
  converted.check_against_module(variables, config, src, smpl)
  cleaned = converted.save(dst, variables, config, overwrite=overwrite)
  if cleaned:
    print('; '.join(cleaned))
  n = sum(v.size for k, v in state_dict.items() if not k.endswith('num_batches_tracked'))
  print(f'wrote {dst}: {model} {variant}, {len(state_dict)} tensors, {n:,} values')


def run() -> None:
  """The `mbjax-convert` console script and `python -m mbjax.convert`."""
  from mbjax import cli
  cli.run(main, program=_PROGRAM, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
