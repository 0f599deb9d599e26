"""Benchmarks: `python -m mbjax.bench {model,data,train} ...`; the last line printed is JSON."""
