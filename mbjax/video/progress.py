"""Progress of the frame-by-frame stages of video inference: frames/s of each stage and an ETA.

On a terminal a tqdm bar (`2D keypoints: 40%|####| 318/795 [decode 410 f/s, 2D 5.1 f/s,
people 4, ETA 0:01:33]`); otherwise a plain line every `every_s` seconds and at the end. Rates
are each stage's own: frames over the seconds spent in that stage.
"""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


class StageProgress:
  """Frames through named stages, each timed on its own.

  Args:
    total: frames expected (None: unknown, no ETA).
    desc: label in front of the line.
    file: output stream (default stderr).
    use_bar: force the tqdm bar on or off (default: on when `file` is a terminal).
    every_s: seconds between plain lines.
    clock: seconds since some origin (tests pass a fake one).
  """

  def __init__(self, total: int | None, desc: str = '2D keypoints', *, file=None,
               use_bar: bool | None = None, every_s: float = 10.0, clock=time.perf_counter):
    self.total, self.desc, self.every_s, self._clock = total, desc, every_s, clock
    self.file = sys.stderr if file is None else file
    self.frames, self.seconds, self.extra = 0, {}, {}
    self._start = self._last_line = clock()
    if use_bar is None:
      use_bar = bool(getattr(self.file, 'isatty', lambda: False)())
    self._bar = None
    if use_bar:
      import tqdm
      self._bar = tqdm.tqdm(total=total, desc=desc, file=self.file, dynamic_ncols=True,
                            bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
                                       '[{postfix}]')

  def rates(self) -> dict[str, float]:
    """stage -> frames/s over the time spent in it."""
    return {k: round(self.frames / s, 2) if s > 0 else 0.0 for k, s in self.seconds.items()}

  def eta(self) -> float | None:
    if not self.total or not self.frames:
      return None
    elapsed = self._clock() - self._start
    return max(0.0, elapsed / self.frames * (self.total - self.frames))

  def text(self) -> str:
    parts = [f'{k} {v:g} f/s' for k, v in self.rates().items()]
    parts += [f'{k} {v}' for k, v in self.extra.items()]
    eta = self.eta()
    if eta is not None:
      parts.append(f'ETA {_duration(eta)}')
    return ', '.join(parts)

  def update(self, seconds: dict[str, float], **extra) -> None:
    """One frame more: `seconds` it spent in each stage; `extra` shown as is (e.g. people=4)."""
    self.frames += 1
    for k, s in seconds.items():
      self.seconds[k] = self.seconds.get(k, 0.0) + s
    self.extra = extra
    if self._bar is not None:
      self._bar.update(1)
      self._bar.set_postfix_str(self.text(), refresh=False)
    elif self._clock() - self._last_line >= self.every_s:
      self._line()

  def _line(self) -> None:
    self._last_line = self._clock()
    of = f'/{self.total}' if self.total else ''
    print(f'{self.desc}: {self.frames}{of} frames, {self.text()}', file=self.file, flush=True)

  def close(self) -> dict[str, float]:
    """Ends the bar (or prints the last line); returns `rates()`."""
    if self._bar is not None:
      self._bar.close()
    self.total = self.frames  # ETA 0
    self._line()
    return self.rates()
