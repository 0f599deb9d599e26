"""What a run shows and keeps: metrics.jsonl and TensorBoard writers, the progress line, and the
filter that keeps library chatter off the console."""
