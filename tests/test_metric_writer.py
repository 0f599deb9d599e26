"""JSONL writing and resume, MetricWriter on process 0 and elsewhere, device scalars to floats."""

import json
import time

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import event_reader
from mbjax.logs import metric_writer


def test_jsonl_converts_scalars_and_resume_drops_later_steps(tmp_path):
  path = tmp_path / 'run' / 'metrics.jsonl'
  with metric_writer.JsonlWriter(path) as writer:
    for step in (10, 20, 30, 40):
      writer.scalars(step, {'loss': jnp.float32(step / 8), 'n': np.int32(step),
                            'per_joint': np.array([1.5, 2.5], np.float32)})
    # Flushed at each write: readable before close.
    assert [r['step'] for r in metric_writer.read_jsonl(path)] == [10, 20, 30, 40]
  with open(path, 'a') as f:
    f.write('{"step": 50, "loss"')  # torn line of a crash mid-write
  records = [json.loads(line) for line in path.read_text().splitlines()[:4]]
  assert records[0]['loss'] == 1.25 and type(records[0]['loss']) is float
  assert records[1]['n'] == 20 and type(records[1]['n']) is int
  assert records[2]['per_joint'] == [1.5, 2.5]
  assert abs(records[0]['time'] - time.time()) < 60

  # Restored from the step-30 checkpoint.
  with metric_writer.JsonlWriter(path, resume_step=30) as writer:
    writer.scalars(30, {'loss': 9.0})
  records = metric_writer.read_jsonl(path)
  assert [r['step'] for r in records] == [10, 20, 30]
  assert records[-1]['loss'] == 9.0
  with pytest.raises(ValueError, match="'step' at step 5 is reserved"):
    metric_writer.JsonlWriter(path).scalars(5, {'step': 1})


def test_metric_writer_writes_everything_on_primary(tmp_path):
  config = ml_collections.ConfigDict({'lr': 5e-4, 'model': {'depth': 5}, 'patterns': ('^head/',)})
  with metric_writer.MetricWriter(tmp_path, is_primary=True) as writer:
    writer.write_config(config)
    writer.scalars(1, {'loss': jnp.float32(0.5), 'lr': 5e-4})
    writer.image(1, 'img', np.zeros((2, 3, 3), np.uint8))
    writer.write_summary({'mpjpe_mm': np.float64(39.2), 'step': 1})
  assert json.loads((tmp_path / 'config.json').read_text()) == {
      'lr': 5e-4, 'model': {'depth': 5}, 'patterns': ['^head/']}
  assert json.loads((tmp_path / 'summary.json').read_text()) == {'mpjpe_mm': 39.2, 'step': 1}
  records = metric_writer.read_jsonl(tmp_path / 'metrics.jsonl')
  assert [(r['step'], r['loss'], r['lr']) for r in records] == [(1, 0.5, 5e-4)]
  events = event_reader.events(event_reader.event_file(tmp_path / 'tb'))
  assert events[1]['values'] == {'loss': 0.5, 'lr': pytest.approx(5e-4, rel=1e-7)}
  assert set(events[2]['values']) == {'img'}


def test_metric_writer_resume_and_non_primary(tmp_path):
  with metric_writer.MetricWriter(tmp_path, is_primary=True) as writer:
    for step in (1, 2, 3):
      writer.scalars(step, {'loss': float(step)})
  with metric_writer.MetricWriter(tmp_path, is_primary=True, resume_step=2) as writer:
    writer.scalars(2, {'loss': 20.0})
  records = metric_writer.read_jsonl(tmp_path / 'metrics.jsonl')
  assert [(r['step'], r['loss']) for r in records] == [(1, 1.0), (2, 20.0)]

  other = tmp_path / 'other'
  writer = metric_writer.MetricWriter(other, is_primary=False)
  writer.write_config({'lr': 1.0})
  writer.scalars(1, {'loss': 1.0})
  writer.image(1, 'img', np.zeros((2, 2, 3), np.uint8))
  writer.write_summary({'x': 1})
  writer.close()
  assert not other.exists()
  assert metric_writer.MetricWriter(tmp_path / 'auto').is_primary  # single process: process 0


def test_to_float_dict():
  out = metric_writer.to_float_dict({'a': jnp.float32(1.5), 'b': np.int32(3), 'c': jnp.ones((1,))})
  assert out == {'a': 1.5, 'b': 3.0, 'c': 1.0}
  assert all(type(v) is float for v in out.values())
  with pytest.raises(ValueError, match="'v' has shape \\(2,\\)"):
    metric_writer.to_float_dict({'v': jnp.zeros(2)})


def test_push_returns_the_previous_step_and_pop_the_held_one(tmp_path):
  writer = metric_writer.MetricWriter(tmp_path, is_primary=False)  # reading needs no files
  assert writer.push(1, {'loss': jnp.float32(3.0)}) is None
  step, m = writer.push(2, {'loss': jnp.float32(2.0)})
  assert step == 1 and m == {'loss': 3.0} and isinstance(m['loss'], float)
  assert writer.pop() == (2, {'loss': 2.0})
  assert writer.pop() is None
  assert not list(tmp_path.iterdir())
