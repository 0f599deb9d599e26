"""Compute accounting (mbjax/train/compute.py): parameter counts, the analytic FLOPs of the trainer's
step against XLA's cost analysis, wall time over a resume (the cumulative counts in a run's
metrics and summary: tests/test_train.py::test_train_end_to_end)."""

import math
import os

import jax
import numpy as np
import pytest

from mbjax import models
from mbjax.train import compute
from mbjax.logs import metric_writer
from mbjax.data import pipelines


def test_parameter_counts_leave_out_the_embeddings():
  model = models.dstformer_from_variant('tiny', maxlen=9)
  params = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 9, 17, 3)))['params']
  counts = compute.parameter_counts(params)
  C = model.dim_feat
  embedding = (3 * C + C) + 17 * C + 9 * C  # joints_embed kernel + bias, pos_embed, temp_embed
  total = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
  assert counts == dict(params=total, params_non_embedding=total - embedding)


@pytest.mark.parametrize('dim_feat', [128])
def test_analytic_train_step_flops_match_xla(tiny_config, dim_feat):
  """The trainer's own step (loss, backward, AdamW) at the task's clip length: the analytic count
  (3 x forward matmuls, attention included) is within 10% of what XLA counts; XLA also counts the
  element-wise work (norms, softmax, GELU, optimizer), which shrinks with width."""
  from mbjax import train
  config = tiny_config('tiny_pretrain', '/nonexistent')
  with config.unlocked():
    config.model.dim_feat = dim_feat
    config.model.maxlen = 27
  s = train.setup(config, with_data=False)
  batch = {k: np.ones(v.shape, v.dtype) for k, v in s.example.items()}
  compiled = s.train_step.lower(s.abstract_state(), batch, pipelines.KIND_3D).compile()
  xla = compiled.cost_analysis()
  xla = (xla[0] if isinstance(xla, (list, tuple)) else xla)['flops'] * s.mesh.size
  analytic = s.task.flops_per_step(config)
  assert 0.9 < analytic / xla < 1.1, (analytic, xla)


def test_wall_time_continues_from_the_last_logged_value_on_resume(tmp_path):
  with metric_writer.JsonlWriter(tmp_path / 'metrics.jsonl') as w:
    w.scalars(2, {'loss': 1.0, 'compute/wall_s': 5.0})
    w.scalars(4, {'loss': 1.0, 'compute/wall_s': 9.0})
    w.scalars(6, {'loss': 1.0, 'compute/wall_s': 14.0})  # after the checkpoint: lost work
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 7, "compute/wa')  # torn by a kill mid-write
  example = {'input': jax.ShapeDtypeStruct((2, 9, 17, 3), np.float32)}
  meter = compute.ComputeMeter(params={}, example=example, flops_per_step=None,
                               workdir=str(tmp_path), start_step=4)
  assert 9.0 <= meter.wall_s() < 10.0
  assert 'compute/flops' not in meter.at(5)
  fresh = compute.ComputeMeter(params={}, example=example, flops_per_step=None,
                               workdir=str(tmp_path), start_step=0)
  assert fresh.wall_s() < 1.0
  assert not os.path.exists(tmp_path / 'missing') and compute._logged_wall_s(
      str(tmp_path / 'missing'), 4) == 0.0
