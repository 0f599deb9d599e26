"""The embedded demo: build datasets from the shipped recordings, pretrain, evaluate, draw.

`python -m mbjax.demo --workdir DIR` (__main__.py); `job.run(workdir, overrides)` from Python;
config.py is the demo config and plots.py draws its pictures.
"""
