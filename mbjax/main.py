"""`python -m mbjax.main`: the training command's first name, kept for existing scripts; the same
program as `python -m mbjax.train` (mbjax/train/__main__.py)."""

if __name__ == '__main__':
  from mbjax.train import __main__ as train_main
  train_main.start(program='mbjax.main')
