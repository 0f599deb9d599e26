"""What a checkpoint holds, without building its model: `python -m mbjax.checkpoint check PATH`.

`describe(path)` names the container (an official `.bin`, an `mbjax.convert` directory, a trainer
workdir or a demo workdir's `train/`), the model kind (pose, action-class, action-embed, mesh,
as `official.official_kind` and `converted.model_kind` tell them), the DSTformer size and its
variant, the clip length (maxlen), the joints, the number of parameters, and for a workdir its
task and the training step whose weights are read. `commands(info)` lists the command lines that
take it.
"""

from __future__ import annotations

import json
import math
import os

import jax

from mbjax.checkpoint import converted, official

SIZE_FIELDS = ('dim_feat', 'depth', 'mlp_ratio', 'dim_rep')  # maxlen is reported on its own
CONVERT_VARIANTS = ('release', 'lite')  # the sizes of released checkpoints (mbjax.convert)
# Evaluation configs of the official checkpoints' kinds (README, "Weights").
_EVAL_CONFIG = {'pose': 'configs/pose3d_h36m.py:ft', 'action-class': 'configs/action_ntu60.py:xsub',
                'action-embed': 'configs/action_ntu120_oneshot.py', 'mesh': 'configs/mesh.py:pw3d'}


def _steps_dir(path: str) -> str:
  """A workdir's `checkpoints/`, or `path` itself when it is a folder of steps (`RUN/best`)."""
  directory = os.path.join(path, 'checkpoints')
  return directory if os.path.isdir(directory) else path


def latest_step(path: str) -> int | None:
  """The step whose weights `load_variables(path)` reads from a trainer workdir (its latest
  checkpoint under `checkpoints/`) or from a folder of steps (`RUN/best`, `RUN/snapshots`); a
  save still in progress (`<step>.orbax-checkpoint-tmp-*`) is not one."""
  steps = [int(name) for name in os.listdir(_steps_dir(path)) if name.isdigit()]
  return max(steps) if steps else None


def _size(dims: dict) -> dict:
  """size fields, maxlen and the variant name (None when no variant has these sizes)."""
  size = {k: dims[k] for k in SIZE_FIELDS}
  return dict(size, maxlen=int(dims['maxlen']), variant=official.variant_of(size))


def _count(shapes) -> int:
  return int(sum(math.prod(s) for s in shapes))


def _describe_bin(path: str) -> dict:
  state_dict = official.load_official(path)
  kind = official.official_kind(state_dict)
  params = official.official_to_variables(state_dict, kind)['params']
  pos_embed = next(v for k, v in state_dict.items() if k.endswith('pos_embed'))
  return dict(container='official .bin', kind=kind, joints=int(pos_embed.shape[-2]),
              parameters=_count(x.shape for x in jax.tree_util.tree_leaves(params)),
              **_size(official.dstformer_dims(state_dict)))


def _item_shapes(item_dir: str) -> dict:
  """{'params': [shape, ...], ...} of an orbax item, from its metadata (no arrays read)."""
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as ckptr:  # orbax finds no metadata under a relative path
    tree = ckptr.metadata(os.path.abspath(item_dir)).item_metadata
  if tree is None:
    raise FileNotFoundError(f'{item_dir}: no array metadata (_METADATA missing?)')
  return {k: [tuple(x.shape) for x in jax.tree_util.tree_leaves(v)] for k, v in tree.items()}


def _describe_convert(path: str, config: dict) -> dict:
  backbone = config['backbone']
  shapes = _item_shapes(os.path.join(path, 'variables'))
  return dict(container='mbjax.convert directory', kind=converted.model_kind(config),
              joints=int(backbone.get('num_joints', 17)), parameters=_count(shapes['params']),
              **_size(backbone))


def _describe_workdir(path: str, config: dict) -> dict:
  model = config['model']
  step = latest_step(path)
  if step is None:
    raise FileNotFoundError(f'{path}: a trainer workdir with no checkpoint yet')
  shapes = _item_shapes(os.path.join(_steps_dir(path), str(step), 'state'))
  return dict(kind=converted.model_kind(config),
              task=config.get('task'), step=step, joints=int(model.get('num_joints', 17)),
              parameters=_count(shapes['params']), **_size(model))


def read_config(folder: str) -> dict | None:
  """The config.json in `folder`, None if there is none."""
  path = os.path.join(folder, 'config.json')
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: cannot read it: {e}') from e


def _is_run(folder: str) -> bool:
  return isinstance((read_config(folder) or {}).get('model'), dict)


def find_run(path: str) -> tuple[str, str | None]:
  """(the folder or file whose weights are read, the training run's folder (its config.json), or
  None for an official `.bin` or a convert directory).

  A demo workdir's weights are its trainer workdir `DIR/train`; `RUN/best` and `RUN/snapshots/N`
  (folders of steps) belong to RUN.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    return path, None
  inner = os.path.join(path, 'train')
  if read_config(path) is None and _is_run(inner):
    return inner, inner
  parent = os.path.dirname(os.path.abspath(path))
  for folder in (path, parent, os.path.dirname(parent)):
    if _is_run(folder):
      return path, folder
    if read_config(folder) is not None:
      break
  return path, None


def describe(path: str) -> dict:
  """What `path` holds (module docstring)."""
  path = os.fspath(path)
  if os.path.isfile(path):
    return dict(_describe_bin(path), path=path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: no such file or directory (expected an official .bin, an '
                            'mbjax.convert directory or a trainer workdir)')
  weights, run = find_run(path)
  if run is not None:
    container = ('demo workdir (its trainer workdir train/)' if weights != path else
                 'trainer workdir' if run == path else 'steps of a trainer workdir')
    return dict(_describe_workdir(weights, read_config(run)), path=path, container=container)
  config = read_config(path)
  if config is None:
    raise FileNotFoundError(f'{path}: no config.json: not an mbjax.convert directory or a '
                            'trainer workdir')
  if isinstance(config.get('model'), str) and 'backbone' in config:
    return dict(_describe_convert(path, config), path=path)
  raise ValueError(f'{path}/config.json: neither an mbjax.convert config (model, backbone) nor '
                   'a trainer config (a model block)')


def _eval_config(info: dict) -> str:
  """The config that goes with an official checkpoint of this kind and size."""
  if info.get('variant') not in CONVERT_VARIANTS:
    return 'CONFIG'  # not a released size: the config it was trained with
  if info['kind'] == 'pose' and info.get('variant') == 'lite':
    return 'configs/pose3d_h36m.py:global_lite'  # FT_MB_lite_MB_ft_h36m_global_lite
  return _EVAL_CONFIG[info['kind']]


def commands(info: dict) -> list[str]:
  """The command lines that take the checkpoint `info` describes. A workdir brings its config;
  a convert directory its model but not its data or labels; a .bin neither."""
  path, kind = info['path'], info['kind']
  run, binary = 'workdir' in info['container'], info['container'] == 'official .bin'
  config = '' if run else f' --config={_eval_config(info)}'  # evaluators, labels
  model = config if binary else ''  # the model itself
  if kind == 'pose' and info.get('variant') == 'lite':
    model = ''  # infer's and export's default config is the Lite in-the-wild model
  lines = []
  if kind == 'pose':
    lines.append(f'python -m mbjax.infer KEYPOINTS.json --checkpoint {path} --out out/DIR{model}')
  elif kind.startswith('action'):
    embed = ' --embed=out/clip.npy' if kind == 'action-embed' else ''
    lines.append(f'python -m mbjax.predict_action --checkpoint={path} --input=CLIP.json'
                 f'{config}{embed}')
  if run and kind != 'pose':
    flag = 'mesh' if kind == 'mesh' else 'action'
    lines.append(f'python -m mbjax.infer KEYPOINTS.json --checkpoint POSE --{flag} {path} '
                 '--out out/DIR')
  lines.append(f'python -m mbjax.evaluate --checkpoint={path}{config}')
  lines.append(f'python -m mbjax.export --checkpoint={path} --format=onnx --out=out/{kind}.onnx'
               f'{model}')
  lines.append(f'python -m mbjax.train --config=CONFIG --workdir=RUN --config.init_from={path}')
  if binary and info.get('variant') in CONVERT_VARIANTS:
    smpl = ' --smpl_dir data/mesh' if kind == 'mesh' else ''
    lines.append(f'python -m mbjax.convert {path} ckpt/NAME --model {kind} '
                 f'--variant {info["variant"]}{smpl}')
  elif not run and not binary:
    lines.append(f'python -m mbjax.convert --to-official {path} out/NAME.bin')
  return lines


def report(info: dict) -> str:
  """The lines `python -m mbjax.checkpoint check` prints."""
  variant = info['variant'] or 'no named variant'
  size = ', '.join(f'{k} {info[k]:g}' for k in SIZE_FIELDS)
  lines = [f'{info["path"]}: {info["container"]}',
           f'  kind: {info["kind"]}' + (f' (trained by task {info["task"]})'
                                        if info.get('task') else ''),
           f'  DSTformer: {variant} ({size})',
           f'  clip length (maxlen): {info["maxlen"]} frames; joints: {info["joints"]}',
           f'  parameters: {info["parameters"]:,}']
  if 'step' in info:
    lines.append(f'  training step: {info["step"]} (the latest checkpoint, which is read)')
  lines.append('  accepted by:')
  lines += [f'    {line}' for line in commands(info)]
  return '\n'.join(lines)
