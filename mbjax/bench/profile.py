"""`python -m mbjax.bench profile`: where the model bench's step spends its time, per XLA op.

Traces a few calls of the model bench's compiled train step (or forward, `--call=infer`) with
`jax.profiler`, reads the trace back (`jax.profiler.ProfileData`, no TensorBoard needed) and sums
each XLA op's time over all threads. Each op is classed from the compiled HLO: `matmul` (a dot,
or a fusion holding one: YNNPACK / XNNPACK / oneDNN / Eigen), `reduction`, `transpose/copy`
(layout changes, perhaps with a bias add fused in), `elementwise`, `other`. The JSON gives
milliseconds per step of each class and the top ops; the full trace stays in `--trace_dir` for
TensorBoard / xprof when given. Times are summed over threads: a library op that parallelises
inside (YNNPACK) counts once, on the thread that calls it.
"""

from __future__ import annotations

import collections
import glob
import re
import tempfile

import jax

from mbjax.bench import model as model_bench

_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*[^=]*?\s([\w\-]+)\(')
_CALLS = re.compile(r'calls=%?([\w.\-]+)')
_COMPUTATION = re.compile(r'^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$')


def _computations(hlo: str) -> tuple[dict[str, str], dict[str, list[str]]]:
  """(instruction name -> its line, computation name -> the opcodes in it) of an HLO module."""
  lines, opcodes, current = {}, collections.defaultdict(list), None
  for line in hlo.splitlines():
    head = _COMPUTATION.match(line)
    if head and '=' not in line.split('{')[0]:
      current = head.group(1)
      continue
    m = _INSTRUCTION.match(line)
    if m:
      lines[m.group(1)] = line
      opcodes[current].append(m.group(2))
  return lines, opcodes


def op_class(name: str, lines: dict[str, str], opcodes: dict[str, list[str]]) -> str:
  """The class of the op an event names (see the module docstring)."""
  line = lines.get(name, '')
  called = _CALLS.search(line)
  ops = set(opcodes.get(called.group(1), ())) if called else set()
  m = _INSTRUCTION.match(line)
  if m:
    ops.add(m.group(2))
  if name.startswith(('ynn_', 'xnn_', 'onednn')) or ops & {'dot', 'convolution'} or (
      'custom-call' in ops and 'matmul' in line.lower()):
    return 'matmul'
  if ops & {'reduce', 'reduce-window'}:
    return 'reduction'
  if ops & {'transpose', 'copy'}:  # layout changes, perhaps with a bias add fused in
    return 'transpose/copy'
  if ops:
    return 'elementwise'
  return 'other'


def _op_times(trace_dir: str, names) -> dict[str, float]:
  """Nanoseconds per op of the newest trace under `trace_dir`: the events named as an
  instruction in `names` (the runtime's own events, thread-pool and wait events left out)."""
  from jax.profiler import ProfileData
  path = sorted(glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True))[-1]
  totals = collections.Counter()
  for plane in ProfileData.from_file(path).planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in names:
          totals[event.name] += event.duration_ns
  return dict(totals)


def run(args) -> dict:
  b = model_bench.build(args)
  state = {'params': b['params'], 'opt_state': b['opt_state']}

  def call():
    if args.call == 'infer':
      return b['infer'](state['params'], b['x'])
    state['params'], state['opt_state'], loss = b['step'](state['params'], state['opt_state'],
                                                          b['x'], b['y'])
    return loss

  jax.block_until_ready(call())
  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix='mbjax-profile-')
  with jax.profiler.trace(trace_dir):
    for _ in range(args.steps):
      jax.block_until_ready(call())
  compiled = b['infer'] if args.call == 'infer' else b['step']
  lines, opcodes = _computations(compiled.as_text())
  times = _op_times(trace_dir, lines)
  per_class = collections.Counter()
  for name, ns in times.items():
    per_class[op_class(name, lines, opcodes)] += ns
  total = sum(times.values()) or 1
  ms = lambda ns: round(ns / 1e6 / args.steps, 2)  # noqa: E731
  top = sorted(times.items(), key=lambda kv: -kv[1])[:args.top]
  return dict(bench='profile', variant=args.variant, batch=args.batch, frames=args.frames,
              dtype=args.dtype, attention=b['attention'], steps=args.steps, trace_dir=trace_dir,
              op_ms_per_step=ms(total),
              classes={c: dict(ms=ms(ns), share=round(ns / total, 3))
                       for c, ns in per_class.most_common()},
              top_ops=[dict(op=name, op_class=op_class(name, lines, opcodes), ms=ms(ns),
                            share=round(ns / total, 3)) for name, ns in top])


def define_flags(fv) -> None:
  """The model bench's flags plus this bench's own."""
  from absl import flags
  model_bench.define_flags(fv)
  flags.DEFINE_enum('call', 'train', ['train', 'infer'], 'which compiled call to profile: the '
                    'train step or the forward', flag_values=fv)
  flags.DEFINE_integer('steps', 2, 'traced calls', flag_values=fv)
  flags.DEFINE_integer('top', 15, 'ops listed', flag_values=fv)
  flags.DEFINE_string('trace_dir', '', 'keep the trace here (default: a temporary folder)',
                      flag_values=fv)
