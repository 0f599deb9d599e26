"""In-the-wild inference: 2D keypoints of any common format -> 3D motion of every person.

  python -m mbjax.infer INPUT --checkpoint CKPT --out DIR [--format ...] [--size WxH] [--pixel]
      [--focus N] [--clip_len L] [--stride S]

Reading files into detections and H36M-17 tracks is `mbjax.data.keypoint_files` and
`mbjax.data.person_tracks` (shared with the action datasets). Modules: `lift` (normalisation, model
in batches), `windows` (windows of clip_len frames, blending, the official split),
`model` (which model and options a checkpoint means), `outputs` (results.npz / .json),
`pipeline` (all of it for one input), `stream` (live: `StreamLifter`, one frame at a time).
"""

__all__ = ['StreamLifter']


def __getattr__(name):
  """`mbjax.infer.StreamLifter`, imported on first use (the CLI does not pay for it)."""
  if name == 'StreamLifter':
    from mbjax.infer.stream import StreamLifter
    return StreamLifter
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

