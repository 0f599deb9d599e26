"""The one trainer: setup (mesh -> task -> model, optimizer, state layout -> jitted step) ->
restore -> evaluators -> loop; `python -m mbjax.train --config=... --workdir=...`.

Parts: `setup` (what a run is built from), `state` (train state layout and shardings), `step`
(the jitted train step), `loop` (train_and_evaluate), `optim` (optimizer and schedules),
`sharding` (mesh and logical rules), `config_diff` (resume checks), `compute` and `peak_flops`
(FLOPs, clips, wall time, MFU), `checks` (the trainer's config fields), `workdir` (one trainer per
workdir, history set aside), `faults` (signals, a full disk). The trainer knows no task:
`config.task` names a module of `mbjax.tasks`.
"""

from mbjax.train.faults import INTERRUPTED, WorkdirWriteError
from mbjax.train.loop import NonFiniteLossError, log_due, snapshot_steps, train_and_evaluate
from mbjax.train.build import Setup, make_mesh, setup
from mbjax.train.state import StateLayout, state_layout, variables_of
from mbjax.train.step import jit_train_step, make_train_step
