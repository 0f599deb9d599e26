"""Data: per-clip transforms and augmentations, sources and input pipelines."""
