"""Weights and state in and out: the trainer's orbax checkpoints, the one weight loader, the
official MotionBERT format and its torch zip reader, and `mbjax.convert` directories.

  checkpoint.load_variables(path)          # official .bin, convert dir or trainer workdir
  checkpoint.load_pretrained(variables, path)
  module, variables = checkpoint.restore('ckpt/mb_release')
  state_dict = checkpoint.load_official('MB_release.bin')   # numpy, no torch needed

Modules, each importing only those above it: `torch_zip` (torch's zip/pickle format without
torch) -> `official` (state dict <-> variables) -> `converted` (convert directories) ->
`state` (the trainer's orbax state and iterator) -> `loader` (load_variables, load_pretrained).
"""

from mbjax.checkpoint.converted import restore, save
from mbjax.checkpoint.loader import (dstformer_size, fit_pretrained, load_pretrained,
                                     load_variables)
from mbjax.checkpoint.official import (load_official, official_kind, official_to_variables,
                                       save_official, variables_to_official)
from mbjax.checkpoint.state import Checkpointer, read_state, restore_state_only
