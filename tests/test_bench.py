"""`python -m mbjax.bench`: absl flags per bench, config overrides as in every entry point."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from mbjax.bench import __main__ as bench

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bench(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='', MBJAX_ALLOCATOR='system')
  return subprocess.run([sys.executable, '-m', 'mbjax.bench', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_train_bench_runs_the_trainer_step_with_overrides():
  proc = _bench('train', '--config=configs/pretrain.py:tiny', '--config.batch_size=2',
                '--frames', '9', '--steps', '1', '--warmup', '0')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['batch'] == 2 and result['frames'] == 9 and result['task'] == 'pretrain'
  assert result['overrides'] == {'batch_size': 2}
  assert result['step_s'] > 0 and result['analytic_tflop_per_step'] > 0


def test_train_bench_of_the_action_task_counts_both_persons():
  """The backbone sees B x M sequences: FLOPs, frames/s and the task's own loss kind."""
  proc = _bench('train', '--config=tests/configs/tiny_action.py:unused/data_dir',
                '--config.mesh_devices=0', '--steps', '1', '--warmup', '0')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert (result['task'], result['kind'], result['batch'], result['sequences']) == (
      'action', 'action', 4, 8)
  from mbjax.models.flops import dstformer_forward_flops
  from mbjax.models.dstformer import TINY
  backbone = dstformer_forward_flops(batch=8, frames=9, with_head=False,
                                     **{k: v for k, v in TINY.items() if k != 'maxlen'})
  head = 2 * 4 * (17 * 64 * 2048 + 2048 * 60)  # the class head's fc1 and fc2 on B = 4 clips
  want = 3 * (backbone + head)  # the task's count, both persons through the backbone
  assert result['analytic_source'] == 'task'
  assert abs(result['analytic_tflop_per_step'] * 1e12 - want) < 1e-3 * want
  assert result['clips_per_s'] * 2 * 9 == pytest.approx(result['frames_per_s'])


def test_infer_bench_reports_offline_stream_render_and_shared_head_rates(reference_dir):
  proc = _bench('infer', '--variant=tiny', '--frames=30', '--stream_frames=8', '--latency=2',
                '--stream_clip_len=9', '--render_frames=3', '--render_size=96', '--noencode',
                '--heads', f'--smpl_dir={reference_dir / "smpl_synthetic_tiny"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['bench'] == 'infer' and result['offline_clip_len'] == 243
  assert result['stream_clip_len'] == 9 and result['stream_compiles'] == 1
  assert result['stream_push_ms_p95'] >= result['stream_push_ms_mean'] * 0.5 > 0
  assert result['stream_latency_ms_at_fps'] > 2 / 30 * 1e3
  assert result['heads_shared'] == ['pose', 'mesh', 'action'] and result['heads_windows'] == 1
  for key in ('offline_frames_per_s', 'stream_frames_per_s', 'render_frames_per_s',
              'heads_apart_frames_per_s', 'heads_shared_frames_per_s'):
    assert result[key] > 0, key


@pytest.mark.parametrize('argv, message', [
    (['train', '--config=configs/pretrain.py:tiny', '--confg.batch_size=2'],
     "Unknown command line flag 'confg.batch_size'"),
    (['model', '--dtype=bfloat17'], 'bfloat17'),
    (['train'], "Flag --config must have a value other than None"),
])
def test_bench_mistakes_exit_2_with_one_line(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    bench.parse(['mbjax.bench', *argv])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert message in err and 'Traceback' not in err


def test_unknown_bench_lists_the_benches(capsys):
  with pytest.raises(SystemExit) as e:
    bench.parse(['mbjax.bench', 'speed'])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert all(f'  {name} ' in err for name in bench.BENCHES)


@pytest.mark.slow  # ~100 s (two train-step compiles); its search logic is tested below, its step by the train bench's tests
def test_gpu_check_cpu_smoke_reports_each_remat_setting():
  """The accelerator check on tiny CPU shapes: one entry per remat policy, most saving first."""
  proc = _bench('gpu-check', '--cpu_smoke')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert (result['bench'], result['variant'], result['batch'], result['frames']) == (
      'gpu-check', 'tiny', 2, 9)
  assert result['attention_impl'] == 'xla' and result['dtype'] == 'bfloat16'
  assert [s['remat'] for s in result['settings']] == ['full', 'none']
  for setting in result['settings']:
    assert setting['step_s'] > 0 and setting['tflops_per_s'] > 0 and setting['mfu'] > 0
    assert setting['peak_memory_bytes'] > 0
    assert setting['max_batch_fits'] == 2 and setting['max_batch_capped']


def test_gpu_check_batch_search_doubles_until_out_of_memory(monkeypatch):
  """The doubling search stops at the backend's RESOURCE_EXHAUSTED, re-raises other errors."""
  import jax
  from mbjax.bench import gpu_check
  oom = jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate')
  tried = []

  def step(args, batch, remat, **_):
    tried.append(batch)
    if batch > 256:
      raise oom
  monkeypatch.setattr(gpu_check, '_train_step', step)
  found = gpu_check.largest_batch(dict(batch=64, max_batch=1024), 'none')
  assert tried == [128, 256, 512]
  assert found == dict(max_batch_fits=256, max_batch_oom=512, max_batch_capped=False,
                       max_batch_cap=1024)
  tried.clear()
  assert gpu_check.largest_batch(dict(batch=64, max_batch=200), 'none')['max_batch_fits'] == 128
  assert tried == [128]

  def broken(*_, **__):
    raise jax.errors.JaxRuntimeError('INTERNAL: something else')
  monkeypatch.setattr(gpu_check, '_train_step', broken)
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):
    gpu_check.largest_batch(dict(batch=64, max_batch=1024), 'none')


def test_profile_bench_classes_the_ops_of_the_traced_step(tmp_path):
  proc = _bench('profile', '--variant=tiny', '--batch=1', '--frames=9', '--steps=1',
                f'--trace_dir={tmp_path}', '--top=5')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  classes = result['classes']
  assert classes['matmul']['ms'] > 0 and 'elementwise' in classes
  assert sum(c['share'] for c in classes.values()) == pytest.approx(1.0, abs=0.01)
  assert sum(c['ms'] for c in classes.values()) == pytest.approx(result['op_ms_per_step'],
                                                                 rel=0.01)
  assert len(result['top_ops']) == 5 and list(tmp_path.rglob('*.xplane.pb'))


def test_model_bench_compares_attention_implementations_in_turn():
  proc = _bench('model', '--variant=tiny', '--batch=1', '--frames=9', '--iters=2',
                '--compare=einsum,matmul')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result['rounds'] == 2 and set(result['compare']) == {'einsum', 'matmul'}
  for impl in ('einsum', 'matmul'):
    assert result['compare'][impl]['infer_frames_per_s'] > 0
    assert result['compare'][impl]['train_frames_per_s'] > 0
