"""python -m mbjax.bench {model,data,train} [options]: the last line printed is one JSON object."""

import argparse
import json
import sys

from mbjax.bench import data as data_bench
from mbjax.bench import model as model_bench
from mbjax.bench import train as train_bench

BENCHES = (model_bench, data_bench, train_bench)


def main(argv=None) -> int:
  if argv is None:  # MBJAX_ALLOCATOR=system measures with the system allocator
    from mbjax import cpu_allocator  # before JAX starts: see mbjax/cpu_allocator.py
    cpu_allocator.reexec_with_jemalloc('mbjax.bench')
  parser = argparse.ArgumentParser(prog='python -m mbjax.bench', description=__doc__)
  sub = parser.add_subparsers(dest='bench', required=True)
  for bench in BENCHES:
    bench.add_parser(sub)
  args = parser.parse_args(argv)
  from mbjax import cpu_allocator
  result = args.run(args)
  result['allocator'] = cpu_allocator.active()
  print(json.dumps(result))
  return 0


if __name__ == '__main__':
  sys.exit(main())
