"""configs/mesh.py small enough for tests: `tiny_mesh.py:DATA_DIR[,mode]`.

The tiny DSTformer at 4-frame clips with a 32-wide head, batch 4 on two fake CPUs, 2 epochs of
H36M + COCO (single frames) + 3DPW, a quarter of the 3DPW training clips held out for validation. The SMPL
folder (`model.head.smpl_dir`) is set by the test (the synthetic model of ../shared/reference).
"""

from configs import common, mesh
from mbjax.models.dstformer import TINY


def get_config(arg: str):
  data_dir, switches = common.parse_arg(arg, config_file=__file__, variants=None,
                                        options=mesh.MODES)
  modes = [m for m in mesh.MODES if switches.pop(m, False)] or ['scratch']
  c = mesh.get_config(f'pw3d,{modes[0]}')
  c.model.update(dict(TINY, maxlen=4))
  c.model.head.update(hidden_dim=32, smpl_dir='')
  c.clip_len = 4
  c.smpl_vertices = 300
  c.epochs = 2
  c.lr = 1e-3  # a visible decrease in 12 steps
  c.batch_size = 4
  c.mesh_devices = 2
  c.data.update(data_dir=data_dir, val_fraction=0.25)
  c.warmup_h36m = None
  c.warmup_coco = None
  c.evals.val.update(every_steps=4, batch_size=4)
  c.evals.test.update(every_steps=0, batch_size=4)
  c.checkpoint.update(every_steps=2, async_save=False)
  c.log_every_steps = 1
  common.apply_switches(c, switches)
  return c
