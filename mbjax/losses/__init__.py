"""Training losses: `pose` (3D position, velocity, limb, 2D and action terms of MotionBERT) and
`mesh` (SMPL mesh recovery)."""
