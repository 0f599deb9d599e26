"""Evaluation: pose-error metrics (`pose_metrics`) and the evaluators built on them."""
