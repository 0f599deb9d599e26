"""Evaluation: pose-error metrics (`metrics`) and the evaluators built on them."""
