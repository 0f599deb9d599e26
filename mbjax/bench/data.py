"""`python -m mbjax.bench data --pipeline pretrain`: input-pipeline throughput in clips/s.

Builds the `mocap` dataset from the real clips shipped in data_prep/assets (or `--assets DIR`
holding mocap/), as ArrayRecord in a temp dir, through mbjax.data.writer; then times the full
pretraining pipeline over it: ArrayRecord reads, crop-scale, flip,
synthetic detector noise, masks, batching, through the grain iterator the trainer uses.
"""

from __future__ import annotations

import functools
import tempfile
import time


def run(args) -> dict:
  from mbjax.data import mocap, pipelines, records, shipped, transforms, writer

  assets = shipped.assets_dir('mocap', args.assets)
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    writer.build(mocap, source=assets, data_dir=tmp,
                 options=dict(clip_len=args.frames, stride=args.stride,
                              yaws=tuple(range(0, 360, 45))))
    build_s = time.perf_counter() - t0
    source = records.load('mocap', 'train', data_dir=tmp)
    make = functools.partial(pipelines.pretrain_3d_example, key='joints3d', flip=True,
                             noise=transforms.SyntheticNoise.load(), mask_ratio=0.05,
                             mask_t_ratio=0.1)
    phase = pipelines.Phase('mocap', pipelines.KIND_3D, source, make)
    curriculum = pipelines.Curriculum([phase], [], epochs=1000, curriculum_3d_epochs=0,
                                      global_batch=args.batch)
    batches = pipelines.HostBatches(curriculum, seed=0)
    it = pipelines.make_iterator(batches, num_workers=args.num_workers, prefetch=args.prefetch)
    next(it)  # start-up (worker processes, first reads) is not throughput
    n, t0 = 0, time.perf_counter()
    while n < args.min_batches or time.perf_counter() - t0 < args.min_seconds:
      batch = next(it)
      n += 1
    elapsed = time.perf_counter() - t0
  return dict(bench='data', pipeline=args.pipeline, frames=args.frames, batch=args.batch,
              num_workers=args.num_workers, records=len(source), build_s=round(build_s, 2),
              batches=n, batch_shape=list(batch['input'].shape),
              clips_per_s=round(n * args.batch / elapsed, 1),
              frames_per_s=round(n * args.batch * args.frames / elapsed, 1))


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  flags.DEFINE_enum('pipeline', 'pretrain', ['pretrain'], 'which pipeline', flag_values=fv)
  flags.DEFINE_integer('frames', 243, 'clip length', flag_values=fv)
  flags.DEFINE_integer('stride', 9, 'clip stride of the mocap build', flag_values=fv)
  flags.DEFINE_string('assets', None, "folder holding mocap/ (default: the checkout's "
                      'data_prep/assets)', flag_values=fv)
  flags.DEFINE_integer('batch', 64, 'clips per batch', flag_values=fv)
  flags.DEFINE_integer('num_workers', 0, 'grain worker processes', flag_values=fv)
  flags.DEFINE_integer('prefetch', 4, 'prefetch buffer', flag_values=fv)
  flags.DEFINE_integer('min_batches', 20, 'timed batches at least', flag_values=fv)
  flags.DEFINE_float('min_seconds', 5.0, 'timed seconds at least', flag_values=fv)
