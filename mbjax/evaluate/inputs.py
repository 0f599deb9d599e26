"""What a task hands its evaluators beyond the config and the model: the evaluators know no
task, so whatever only the task knows (its dataset's records, its clip length, its ground truth)
comes in here."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class TaskInputs:
  """Fields an evaluator may need; a task fills those its evaluators use."""

  split_source: Callable[[str, str], Any] | None = None  # (split, part) -> the split's records
  clip_len: int | None = None  # frames per clip the model is fed
  ground_truth: Callable[[Any, Any], dict] | None = None  # mesh: (smpl, theta) -> kp_3d, verts

  def need(self, field: str, evaluator: str):
    """The value of `field`, or a ValueError naming the evaluator that needs it."""
    value = getattr(self, field)
    if value is None:
      raise ValueError(f'{evaluator} evaluator: the task gives no {field} '
                       '(its make_evaluators passes TaskInputs to the registry)')
    return value
