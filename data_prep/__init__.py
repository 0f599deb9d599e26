"""Dataset builders: published raw formats -> ArrayRecord via TFDS (no TensorFlow needed)."""
