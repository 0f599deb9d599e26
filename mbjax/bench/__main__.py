"""python -m mbjax.bench {model,data,train,infer,video,export,gpu-check,profile,peak} [--flags]:
the last line printed is JSON.

Each bench has its own absl flags (`python -m mbjax.bench train --help`); `train` takes a config
as every entry point does, with `--config.key=value` overrides.
"""

import json
import sys

from absl import flags

from mbjax.bench import data as data_bench
from mbjax.bench import export as export_bench
from mbjax.bench import gpu_check as gpu_check_bench
from mbjax.bench import infer as infer_bench
from mbjax.bench import model as model_bench
from mbjax.bench import peak as peak_bench
from mbjax.bench import profile as profile_bench
from mbjax.bench import train as train_bench
from mbjax.bench import video as video_bench

BENCHES = {'model': model_bench, 'data': data_bench, 'train': train_bench,
           'infer': infer_bench, 'video': video_bench, 'export': export_bench,
           'gpu-check': gpu_check_bench, 'profile': profile_bench, 'peak': peak_bench}


def _usage() -> str:
  lines = [__doc__.strip(), '', 'benches:']
  lines += [f'  {name:9s} {module.__doc__.strip().splitlines()[0]}'
            for name, module in BENCHES.items()]
  return '\n'.join(lines)


def parse(argv: list[str]):
  """(bench module, its parsed FlagValues) from `[prog, bench, --flags...]`; exits on a mistake."""
  if len(argv) < 2 or argv[1] not in BENCHES:
    print(_usage(), file=sys.stderr)
    sys.exit(0 if len(argv) > 1 and argv[1] in ('-h', '--help') else 2)
  name, module = argv[1], BENCHES[argv[1]]
  fv = flags.FlagValues()
  module.define_flags(fv)
  if any(a in ('-h', '--help', '--helpfull') for a in argv[2:]):
    shared = fv.module_help('mbjax.bench') if 'mbjax.bench' in fv.flags_by_module_dict() else ''
    print(module.__doc__.strip() + '\n\n' + fv.module_help(module.__name__) + '\n' + shared)
    sys.exit(0)
  try:
    fv([f'mbjax.bench {name}', *argv[2:]])
  except (flags.Error, ValueError, KeyError, TypeError, AttributeError) as e:
    from mbjax import cli
    message = cli.unknown_config_field([f'mbjax.bench {name}', *argv[2:]], fv) or e
    print(f'mbjax.bench {name}: {message}', file=sys.stderr)
    sys.exit(2)
  return module, fv


def main(argv=None) -> int:
  if argv is None:  # MBJAX_ALLOCATOR=system measures with malloc as the system sets it
    from mbjax.cli import allocator as cpu_allocator  # see mbjax/cli/allocator.py
    from mbjax.cli import dot_path  # MBJAX_DOT_PATH=... measures another matmul path
    cpu_allocator.reexec()
    dot_path.apply()
  argv = list(sys.argv if argv is None else ['mbjax.bench', *argv])
  module, fv = parse(argv)
  from mbjax import cli
  from mbjax.cli import allocator as cpu_allocator
  from mbjax.cli import dot_path, machine
  result = cli.call(f'mbjax.bench {argv[1]}', module.run, fv)
  result.update(allocator=cpu_allocator.active(), dot_path=dot_path.active(),
                cpu_model=machine.cpu_model(), cpu_flags=machine.cpu_flags())
  print(json.dumps(result))
  return 0


if __name__ == '__main__':
  sys.exit(main())
