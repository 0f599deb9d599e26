"""Data: ArrayRecord datasets (records.py reads, writer.py writes), readers of raw formats (mocap,
AlphaPose, H36M screen coordinates), skeleton maps, per-clip transforms and input pipelines."""
