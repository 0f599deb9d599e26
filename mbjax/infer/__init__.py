"""In-the-wild inference: 2D keypoints of any common format -> 3D motion of every person.

  python -m mbjax.infer INPUT --checkpoint CKPT --out DIR [--format ...] [--size WxH] [--pixel]
      [--focus N] [--clip_len L] [--stride S]

Modules: `readers` (files -> detections), `keypoints` (-> H36M-17 tracks), `lift` (normalisation,
model in batches), `windows` (windows of clip_len frames, blending, the official split),
`model` (which model and options a checkpoint means), `outputs` (results.npz / .json),
`pipeline` (all of it for one input).
"""
