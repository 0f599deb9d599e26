"""mbjax: MotionBERT in JAX/Flax, built for TPU/GPU scale-out."""

__version__ = '0.1.0'
