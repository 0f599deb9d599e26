"""FLOP counts: analytic for DSTformer (multiply-add = 2 FLOPs), and XLA's cost analysis."""


def dstformer_forward_flops(*, batch: int, frames: int, num_joints: int = 17, dim_in: int = 3,
                            dim_feat: int = 512, dim_rep: int = 512, dim_out: int = 3,
                            depth: int = 5, mlp_ratio: float = 2, att_fuse: bool = True,
                            with_head: bool = True, **unused) -> float:
  """Matmul FLOPs of one forward pass over (batch, frames, num_joints) tokens."""
  tokens = batch * frames * num_joints
  C, hidden = dim_feat, int(dim_feat * mlp_ratio)
  per_token_stage = 2 * (3 * C * C + C * C + 2 * C * hidden)  # qkv, proj, fc1, fc2
  # Attention scores and weighted sum: 2 matmuls of (L x C) per token, L the attended length.
  spatial_attn = 2 * 2 * num_joints * C
  temporal_attn = 2 * 2 * frames * C
  per_token_block = 2 * per_token_stage + spatial_attn + temporal_attn
  per_token = 2 * C * dim_in + depth * 2 * per_token_block + 2 * C * dim_rep
  if att_fuse:
    per_token += depth * 2 * (2 * C) * 2
  if with_head:
    per_token += 2 * dim_rep * dim_out
  return float(tokens * per_token)


def xla_flops(compiled) -> float | None:
  """FLOPs of a compiled computation by XLA's cost analysis (per device), or None."""
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get('flops', 0.0)) or None
  except Exception:  # cost analysis is best effort on some backends
    return None
