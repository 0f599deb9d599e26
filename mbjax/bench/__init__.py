"""Benchmarks: `python -m mbjax.bench {model,data,train,infer,export} ...`; the last line printed
is JSON."""


def define_model_flags(fv, *, iters: int) -> None:
  """The flags of the benches that time one DSTformer: --variant, --batch, --frames, --iters,
  --min_seconds (in their own absl FlagValues `fv`)."""
  from absl import flags
  flags.DEFINE_enum('variant', 'release', ['release', 'lite', 'tiny'], 'DSTformer size',
                    flag_values=fv)
  flags.DEFINE_integer('batch', 2, 'clips per batch', flag_values=fv)
  flags.DEFINE_integer('frames', 243, 'clip length', flag_values=fv)
  flags.DEFINE_integer('iters', iters, 'timed calls at least', flag_values=fv)
  flags.DEFINE_float('min_seconds', 0.0, 'timed seconds at least', flag_values=fv)
