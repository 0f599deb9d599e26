"""The console progress line of the trainer.

`Progress` prints steps/s, clips/s, TFLOP/s, MFU and ETA with the compile step and paused time
(evaluation, checkpointing) left out of the rates.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Mapping

import jax

from mbjax.logs.metric_writer import to_float_dict


def _format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}'


class Progress:
  """Console progress of training: a tqdm bar on a terminal, a plain line every N steps otherwise.

  Rates count from the first `update` on, so the first (compile) step is excluded, and time spent
  inside `pause()` (evaluation, checkpoints) is excluded too. They are averages over the run so far.

  Args:
    total_steps: the last step of the run.
    start_step: the step the run starts from (non-zero on resume).
    clips_per_step: clips in one global batch.
    desc: label in front of the line.
    num_devices: devices sharing a step (None -> `jax.device_count()`), for the per-device rates.
    flops_per_step: model FLOPs of one global train step; enables TFLOP/s per device.
    peak_flops_per_device: peak FLOP/s of one device; with `flops_per_step` enables MFU.
    show: metric names shown from `update(step, metrics)` besides the rates.
    tags: fixed words at the end of the line (e.g. the CPU allocator in use).
    print_every: steps between plain lines when not on a terminal.
    file: output stream (default stdout).
    use_bar: force the tqdm bar on or off (default: on when `file` is a terminal).
    clock: seconds since some origin (tests pass a fake one).
  """

  def __init__(self, total_steps: int, *, start_step: int = 0, clips_per_step: int,
               desc: str = 'train', num_devices: int | None = None,
               flops_per_step: float | None = None, peak_flops_per_device: float | None = None,
               show: tuple[str, ...] = ('loss',), tags: tuple[str, ...] = (),
               print_every: int = 100, file=None,
               use_bar: bool | None = None, clock: Callable[[], float] = time.perf_counter):
    self.total_steps = int(total_steps)
    self.step = int(start_step)
    self.clips_per_step = clips_per_step
    self.desc = desc
    self.num_devices = jax.device_count() if num_devices is None else int(num_devices)
    self.flops_per_step = flops_per_step
    self.peak_flops_per_device = peak_flops_per_device
    self.show = tuple(show)
    self.tags = tuple(tags)
    self.print_every = max(1, int(print_every))
    self.file = sys.stdout if file is None else file
    self._clock = clock
    self._first_time = self._first_step = None  # set by the first update (after compile)
    self._paused_total = 0.0  # paused seconds since the first update
    self._pause_depth = 0
    self._pause_start = None
    self._metrics: dict[str, float] = {}
    if use_bar is None:
      use_bar = bool(getattr(self.file, 'isatty', lambda: False)())
    self._bar = None
    if use_bar:
      import tqdm  # only on a terminal

      self._bar = tqdm.tqdm(total=self.total_steps, initial=self.step, desc=desc, file=self.file,
                            dynamic_ncols=True,
                            bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
                                       '{postfix}')  # tqdm's own rate would count compile time

  # -- pausing ---------------------------------------------------------------------------------

  def pause(self) -> contextlib.AbstractContextManager:
    """Stops the clock until `resume()`; as a context manager, resumes on exit."""
    if self._pause_depth == 0:
      self._pause_start = self._clock()
    self._pause_depth += 1
    return _Resume(self)

  def resume(self) -> None:
    if self._pause_depth == 0:
      raise ValueError('Progress.resume() without a matching pause()')
    self._pause_depth -= 1
    if self._pause_depth == 0:
      if self._first_time is not None:
        # Only pauses after the first update shorten the measured time; one spanning the first
        # update counts from there.
        self._paused_total += self._clock() - max(self._pause_start, self._first_time)
      self._pause_start = None

  # -- rates -----------------------------------------------------------------------------------

  def _active_seconds(self) -> float:
    now = self._clock()
    active = now - self._first_time - self._paused_total
    if self._pause_start is not None:  # update called while paused
      active -= now - max(self._pause_start, self._first_time)
    return active

  def rates(self) -> dict[str, float]:
    """steps_per_s, clips_per_s, clips_per_s_per_device, eta_s (and tflops_per_device, mfu when
    FLOPs were given); empty until two updates have been seen."""
    if self._first_time is None or self.step <= self._first_step:
      return {}
    active = self._active_seconds()
    if active <= 0:
      return {}
    steps_per_s = (self.step - self._first_step) / active
    out = {
        'steps_per_s': steps_per_s,
        'clips_per_s': steps_per_s * self.clips_per_step,
        'clips_per_s_per_device': steps_per_s * self.clips_per_step / self.num_devices,
        'eta_s': max(0, self.total_steps - self.step) / steps_per_s,
    }
    if self.flops_per_step:
      out['tflops_per_device'] = self.flops_per_step * steps_per_s / self.num_devices / 1e12
      if self.peak_flops_per_device:
        out['mfu'] = out['tflops_per_device'] * 1e12 / self.peak_flops_per_device
    return out

  def line(self) -> str:
    """The fields of the progress line, e.g. 'loss 0.0412 | 3.10 steps/s | 397 clips/s | ...'."""
    parts = []
    for name in self.show:
      if name in self._metrics:
        parts.append(f'{name} {self._metrics[name]:.4g}')
    r = self.rates()
    if r:
      parts += [f'{r["steps_per_s"]:.3g} steps/s', f'{r["clips_per_s"]:.4g} clips/s']
      if self.num_devices > 1:
        parts.append(f'{r["clips_per_s_per_device"]:.4g} clips/s/dev')
      if 'tflops_per_device' in r:
        parts.append(f'{r["tflops_per_device"]:.3g} TFLOP/s/dev')
      if 'mfu' in r:
        parts.append(f'MFU {100 * r["mfu"]:.1f}%')
      parts.append(f'ETA {_format_duration(r["eta_s"])}')
    return ' | '.join(parts + list(self.tags))

  # -- updates ---------------------------------------------------------------------------------

  def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
    """Records that `step` steps are done; `metrics` may hold device scalars (read once)."""
    step = int(step)
    if self._first_time is None:
      self._first_time, self._first_step = self._clock(), step
    self.step = step
    if metrics:
      shown = {k: v for k, v in metrics.items() if k in self.show}
      self._metrics.update(to_float_dict(shown))
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(self.line(), refresh=True)
    elif step == self._first_step or step % self.print_every == 0 or step >= self.total_steps:
      fields = self.line()
      print(f'{self.desc} step {step}/{self.total_steps}' + (f' | {fields}' if fields else ''),
            file=self.file, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> Progress:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class _Resume(contextlib.AbstractContextManager):
  """What `Progress.pause()` returns: leaving the `with` block resumes the clock."""

  def __init__(self, progress: Progress):
    self._progress = progress

  def __exit__(self, *exc) -> None:
    self._progress.resume()
