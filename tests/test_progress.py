"""The progress line: rates without compile and paused time, plain lines and the terminal bar."""

import io

import jax.numpy as jnp
import pytest

from mbjax.logs import progress as progress_lib


class FakeClock:

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_progress_rates_exclude_compile_and_pauses():
  clock, out = FakeClock(), io.StringIO()
  progress = progress_lib.Progress(100, start_step=20, clips_per_step=64, desc='pose3d',
                                   num_devices=8, flops_per_step=8e12,
                                   peak_flops_per_device=1e13, print_every=10, file=out,
                                   clock=clock)
  clock.now += 45.0  # compile
  progress.update(21, {'loss': jnp.float32(0.125), 'ignored': 1.0})
  assert progress.rates() == {}
  for step in range(22, 31):  # 0.5 s per step ...
    clock.now += 0.5
    progress.update(step, {'loss': 0.1})
  with progress.pause():  # ... an evaluation of 60 s ...
    clock.now += 60.0
  progress.pause()
  clock.now += 30.0  # ... and a checkpoint, paused without a `with`
  progress.resume()
  for step in range(31, 41):
    clock.now += 0.5
    progress.update(step, {'loss': 0.05})
  rates = progress.rates()
  assert rates['steps_per_s'] == pytest.approx(2.0)
  assert rates['clips_per_s'] == pytest.approx(128.0)
  assert rates['clips_per_s_per_device'] == pytest.approx(16.0)
  assert rates['eta_s'] == pytest.approx(30.0)
  assert rates['tflops_per_device'] == pytest.approx(2.0)
  assert rates['mfu'] == pytest.approx(0.2)
  lines = out.getvalue().splitlines()
  # First step (after compile), then every 10 steps.
  assert [line.split(' |')[0] for line in lines] == [
      'pose3d step 21/100', 'pose3d step 30/100', 'pose3d step 40/100']
  assert lines[0] == 'pose3d step 21/100 | loss 0.125'
  assert lines[-1] == ('pose3d step 40/100 | loss 0.05 | 2 steps/s | 128 clips/s | '
                       '16 clips/s/dev | 2 TFLOP/s/dev | MFU 20.0% | ETA 0:00:30')
  with pytest.raises(ValueError, match='without a matching pause'):
    progress.resume()


def test_progress_update_while_paused_and_last_step():
  clock, out = FakeClock(), io.StringIO()
  progress = progress_lib.Progress(4, clips_per_step=2, num_devices=1, print_every=100,
                                   file=out, clock=clock)
  progress.update(1)
  clock.now += 1.0
  progress.update(2)
  with progress.pause():
    clock.now += 10.0
    assert progress.rates()['steps_per_s'] == pytest.approx(1.0)
  clock.now += 2.0
  progress.update(4)
  assert progress.rates()['steps_per_s'] == pytest.approx(1.0)
  assert 'tflops_per_device' not in progress.rates()
  assert out.getvalue().splitlines()[-1] == (
      'train step 4/4 | 1 steps/s | 2 clips/s | ETA 0:00:00')


def test_progress_bar_on_terminal():
  clock, out = FakeClock(), io.StringIO()
  with progress_lib.Progress(50, clips_per_step=4, num_devices=1, use_bar=True, file=out,
                             clock=clock) as progress:
    progress.update(1, {'loss': 2.0})
    clock.now += 4.0
    progress.update(9, {'loss': 1.0})
  text = out.getvalue()
  assert '9/50' in text and 'loss 1 | 2 steps/s | 8 clips/s | ETA 0:00:20' in text
