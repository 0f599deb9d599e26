"""Video in: frames of a video, an image or an image folder -> 2D keypoints of every person.

  python -m mbjax.infer vtest.avi --checkpoint CKPT --out DIR [--render] [--keypoints FILE]

Modules: `media` (decoding, in order, through imageio-ffmpeg), `keypoints2d` (the `Keypoints2D`
interface every detector implements, and `make(name)`), `blazepose` and `people` (MediaPipe
BlazePose through LiteRT, every person followed from frame to frame; the optional `video` extra),
`detect` (a detector over a whole input, track ids from mbjax/data/tracker.py, COCO-results
JSON), `source` (what mbjax.infer reads for such an INPUT), `progress` (per-stage frames/s and
ETA). Nothing here imports the optional packages until a detector is made.
"""
