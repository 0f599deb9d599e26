"""Pure numeric metrics (MPJPE, P-MPJPE, Procrustes, mesh errors): a leaf that losses and
evaluators both import."""
