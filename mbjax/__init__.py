"""mbjax: MotionBERT in JAX/Flax, built for TPU/GPU scale-out."""

from mbjax.cli import allocator as _allocator

__version__ = '0.1.0'

# `python -m mbjax.<program>` on a CPU restarts here, before the program imports anything heavy,
# with malloc tuned for XLA (mbjax/cli/allocator.py); importing mbjax in any other way does nothing.
_allocator.reexec_early()
