"""What a dataset build did: records written and records skipped, with the reason for each."""

from __future__ import annotations

import collections
import json


class BuildReport:
  """Counts per split of records written and skipped (by reason); printed at the end of a build."""

  def __init__(self, name: str):
    self.name = name
    self.written_counts: collections.Counter = collections.Counter()
    self.skipped_counts: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)

  def written(self, split: str, n: int = 1) -> None:
    self.written_counts[split] += n

  def skipped(self, split: str, reason: str, n: int = 1) -> None:
    self.skipped_counts[split][reason] += n

  def as_dict(self) -> dict:
    splits = sorted(set(self.written_counts) | set(self.skipped_counts))
    return {
        'dataset': self.name,
        'splits': {s: {'written': self.written_counts[s],
                       'skipped': dict(self.skipped_counts.get(s, {}))} for s in splits},
    }

  def __str__(self) -> str:
    lines = [f'build report: {self.name}']
    for split, info in self.as_dict()['splits'].items():
      lines.append(f'  {split}: {info["written"]} records written, '
                   f'{sum(info["skipped"].values())} skipped')
      for reason, n in sorted(info['skipped'].items()):
        lines.append(f'    {n:6d} skipped: {reason}')
    return '\n'.join(lines)

  def to_json(self) -> str:
    return json.dumps(self.as_dict(), indent=2)
