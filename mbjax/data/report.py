"""What a dataset build did: records written and records skipped, with the reason for each; for
builders that map recorded skeletons (mocap), the joint maps used and the files left unmapped."""

from __future__ import annotations

import collections
import json
from typing import Mapping, Sequence

MAX_FILES_SHOWN = 5  # file names printed per joint map; the JSON report lists them all


class BuildReport:
  """Counts per split of records written and skipped (by reason); printed at the end of a build.

  Attributes:
    joint_maps: [{'convention', 'map': {H36M joint: recorded joint(s)}, 'files'}], one per
      distinct map reported with `joint_map`.
    unmapped: [{'template', 'unplaced', 'hint', 'files'}], one per template, from `unmapped_file`.
  """

  def __init__(self, name: str):
    self.name = name
    self.written_counts: collections.Counter = collections.Counter()
    self.skipped_counts: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)
    self.joint_maps: list[dict] = []
    self.unmapped: list[dict] = []

  def written(self, split: str, n: int = 1) -> None:
    self.written_counts[split] += n

  def skipped(self, split: str, reason: str, n: int = 1) -> None:
    self.skipped_counts[split][reason] += n

  def joint_map(self, source: str, convention: str, mapping: Mapping[str, str]) -> None:
    """Records that `source` was read with `mapping` ({H36M joint: recorded joint(s) in words}),
    found by `convention` (e.g. 'Mixamo, inferred from joint names')."""
    for entry in self.joint_maps:
      if entry['convention'] == convention and entry['map'] == dict(mapping):
        entry['files'].append(source)
        return
    self.joint_maps.append({'convention': convention, 'map': dict(mapping), 'files': [source]})

  def unmapped_file(self, source: str, unplaced: Sequence[str], template: str,
                    hint: str = '') -> None:
    """Records that no joint map fits `source`: the joints not placed and the template map
    written for the user to fill in (`hint`: how to pass it back)."""
    for entry in self.unmapped:
      if entry['template'] == template:
        entry['files'].append(source)
        return
    self.unmapped.append({'template': template, 'unplaced': list(unplaced), 'hint': hint,
                          'files': [source]})

  def as_dict(self) -> dict:
    splits = sorted(set(self.written_counts) | set(self.skipped_counts))
    out = {
        'dataset': self.name,
        'splits': {s: {'written': self.written_counts[s],
                       'skipped': dict(self.skipped_counts.get(s, {}))} for s in splits},
    }
    if self.joint_maps:
      out['joint_maps'] = self.joint_maps
    if self.unmapped:
      out['unmapped'] = self.unmapped
    return out

  def __str__(self) -> str:
    lines = [f'build report: {self.name}']
    for split, info in self.as_dict()['splits'].items():
      lines.append(f'  {split}: {info["written"]} records written, '
                   f'{sum(info["skipped"].values())} skipped')
      for reason, n in sorted(info['skipped'].items()):
        lines.append(f'    {n:6d} skipped: {reason}')
    for entry in self.joint_maps:
      lines.append(f'  joint map ({entry["convention"]}) for {_files(entry["files"])}:')
      width = max(len(k) for k in entry['map'])
      lines += [f'    {k:<{width}} <- {v}' for k, v in entry['map'].items()]
    for entry in self.unmapped:
      lines.append(f'  no joint map fits {_files(entry["files"])}: could not place '
                   f'{", ".join(entry["unplaced"])}')
      lines.append(f'    template map: {entry["template"]}' +
                   (f' ({entry["hint"]})' if entry['hint'] else ''))
    return '\n'.join(lines)

  def to_json(self) -> str:
    return json.dumps(self.as_dict(), indent=2)


def _files(files: Sequence[str]) -> str:
  shown = ', '.join(files[:MAX_FILES_SHOWN])
  more = len(files) - MAX_FILES_SHOWN
  return f'{len(files)} files: {shown} and {more} more' if more > 0 else shown
