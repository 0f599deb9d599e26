"""DSTformer and ActionNet against vectors produced by the official PyTorch code."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from mbjax.checkpoint import official
from mbjax.models import ActionNet, DSTformer, count_params, dstformer_from_variant

TOL = 1e-4


def _reference(reference_dir, name):
  data = np.load(reference_dir / name)
  config = json.loads(str(data['config']))
  prefix = 'model_pos/' if 'model_pos/module.temp_embed' in data.files else 'model/'
  state_dict = {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
  return data, config, state_dict


def _backbone_kwargs(config):
  keys = ('dim_in', 'dim_out', 'dim_feat', 'dim_rep', 'depth', 'num_heads', 'mlp_ratio',
          'num_joints', 'maxlen')
  return {k: config[k] for k in keys}


@pytest.fixture(scope='module')
def pose_ref(reference_dir):
  data, config, state_dict = _reference(reference_dir, 'dstformer_tiny.npz')
  model = DSTformer(**_backbone_kwargs(config))
  return data, model, official.official_to_variables(state_dict, 'pose'), state_dict


def _max_err(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize('impl', ['einsum', 'matmul', 'xla'])
def test_dstformer_matches_official(pose_ref, impl):
  data, model, variables, _ = pose_ref
  model = model.clone(attention_impl=impl)
  assert _max_err(model.apply(variables, data['x']), data['out']) <= TOL
  assert _max_err(model.apply(variables, data['x'], return_rep=True), data['rep']) <= TOL
  assert _max_err(model.apply(variables, data['x_short']), data['out_short']) <= TOL


# Each corruption is a mistake a converter or model could make; parity must catch all of them.
def _transpose_qkv(v):
  k = v['params']['blocks_st_0']['attn_s']['qkv']['kernel']
  C, heads = k.shape[0], 4
  # Heads outer, q/k/v inner: the wrong split order.
  v['params']['blocks_st_0']['attn_s']['qkv']['kernel'] = (
      k.reshape(C, 3, heads, -1).swapaxes(1, 2).reshape(C, -1))


def _swap_fusion(v):
  k = v['params']['ts_attn_0']['kernel']
  C = k.shape[0] // 2
  v['params']['ts_attn_0']['kernel'] = np.concatenate([k[C:], k[:C]], axis=0)


def _transpose_proj(v):
  v['params']['blocks_ts_1']['attn_t']['proj']['kernel'] = (
      v['params']['blocks_ts_1']['attn_t']['proj']['kernel'].T)


CORRUPTIONS = {
    'qkv split order': (_transpose_qkv, {}),
    'fusion order': (_swap_fusion, {}),
    'a transposed kernel': (_transpose_proj, {}),
}


@pytest.mark.parametrize('name', sorted(CORRUPTIONS))
def test_parity_catches_mapping_errors(pose_ref, name):
  data, model, variables, _ = pose_ref
  corrupt, _ = CORRUPTIONS[name]
  broken = jax.tree_util.tree_map(np.array, variables)
  corrupt(broken)
  assert _max_err(model.apply(broken, data['x']), data['out']) > 100 * TOL


def test_parity_catches_wrong_eps_and_gelu(pose_ref, monkeypatch):
  data, model, variables, _ = pose_ref
  from mbjax.models import dstformer
  monkeypatch.setattr(dstformer, 'LAYER_NORM_EPS', 1e-5)
  assert _max_err(model.apply(variables, data['x']), data['out']) > TOL
  monkeypatch.undo()
  import flax.linen as nn
  exact = nn.gelu
  monkeypatch.setattr(dstformer.nn, 'gelu', lambda x, approximate=False: exact(x, True))
  assert _max_err(model.apply(variables, data['x']), data['out']) > TOL


@pytest.mark.parametrize('name', ['action_class_tiny.npz', 'action_embed_tiny.npz'])
def test_action_net_matches_official(reference_dir, name):
  data, config, state_dict = _reference(reference_dir, name)
  backbone = DSTformer(**_backbone_kwargs(config))
  model = ActionNet(backbone=backbone, dim_rep=config['dim_rep'],
                    num_classes=config['num_classes'], version=config['version'],
                    hidden_dim=config['hidden_dim'], num_joints=config['num_joints'])
  version = config['version']
  variables = official.official_to_variables(state_dict, f'action-{version}')
  out = model.apply(variables, data['x'])
  assert out.shape == data['out'].shape
  assert _max_err(out, data['out']) <= TOL
  if version == 'embed':
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)


def test_param_counts():
  for variant, expected in [('release', 42_466_317), ('lite', 16_001_549)]:
    model = dstformer_from_variant(variant)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))
    assert count_params(meta.unbox(shapes['params'])) == expected


def test_init_matches_official_scheme():
  model = DSTformer(dim_feat=64, dim_rep=32, depth=2, num_heads=4, mlp_ratio=2, maxlen=81)
  params = meta.unbox(model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))['params']
  qkv = params['blocks_st_0']['attn_s']['qkv']
  assert abs(float(qkv['kernel'].std()) - 0.02) < 0.002
  assert float(np.abs(qkv['bias']).max()) == 0.0
  assert abs(float(params['temp_embed'].std()) - 0.02) < 0.002
  assert abs(float(params['pos_embed'].std()) - 0.02) < 0.004
  np.testing.assert_array_equal(params['norm']['scale'], 1.0)
  np.testing.assert_array_equal(params['ts_attn_1']['kernel'], 0.0)
  np.testing.assert_array_equal(params['ts_attn_1']['bias'], 0.5)


def test_fan_in_init_scheme():
  model = DSTformer(dim_feat=64, dim_rep=32, depth=2, num_heads=4, mlp_ratio=2, maxlen=81,
                    init_scheme='fan_in')
  params = meta.unbox(model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))['params']
  qkv = params['blocks_st_0']['attn_s']['qkv']['kernel']  # fan_in 64
  fc2 = params['blocks_st_0']['mlp_s']['fc2']['kernel']  # fan_in 128
  # Truncated at 2 std and rescaled (flax variance_scaling): std 1/sqrt(fan_in).
  assert abs(float(qkv.std()) - 64 ** -0.5) < 0.01
  assert abs(float(fc2.std()) - 128 ** -0.5) < 0.01
  assert float(np.abs(qkv).max()) <= 2.0 * 64 ** -0.5 / 0.8796 + 1e-6
  assert abs(float(params['pos_embed'].std()) - 0.88) < 0.1  # trunc_normal(1) cut at +-2
  # The fusion keeps its official init under either scheme.
  np.testing.assert_array_equal(params['ts_attn_1']['kernel'], 0.0)
  np.testing.assert_array_equal(params['ts_attn_1']['bias'], 0.5)
  with pytest.raises(ValueError, match='init_scheme'):
    DSTformer(dim_feat=32, dim_rep=16, depth=1, num_heads=4, maxlen=9, init_scheme='xavier').init(
        jax.random.key(0), jnp.zeros((1, 4, 17, 3)))


def _spatial_attention_at_init(scheme):
  """Logits and probabilities of the first spatial attention of a dim-64 model at init."""
  model = DSTformer(dim_feat=64, dim_rep=64, depth=2, num_heads=4, mlp_ratio=2, maxlen=5,
                    init_scheme=scheme)
  x = 0.5 * jax.random.normal(jax.random.key(1), (2, 5, 17, 3))
  variables = model.init(jax.random.key(0), x)
  _, state = model.apply(variables, x, capture_intermediates=lambda m, _: m.name == 'qkv',
                         mutable=['intermediates'])
  qkv = state['intermediates']['blocks_st_0']['attn_s']['qkv']['__call__'][0]
  qkv = qkv.reshape(2, 5, 17, 3, 4, 16)
  logits = jnp.einsum('btjhd,btkhd->bthjk', qkv[..., 0, :, :], qkv[..., 1, :, :]) / 4.0
  return np.asarray(logits), np.asarray(jax.nn.softmax(logits, axis=-1))


def test_fan_in_init_starts_with_non_uniform_attention():
  """Why mbjax/demo/config.py uses init_scheme='fan_in': at dim 64 the official std .02 gives
  attention logits of std ~0.03, i.e. uniform attention over the 17 joints, which a short run does
  not escape; with fan-in scaling the logits start at std ~1."""
  logits, probs = _spatial_attention_at_init('official')
  assert logits.std() < 0.05 and probs.max(-1).mean() < 1.1 / 17
  logits, probs = _spatial_attention_at_init('fan_in')
  assert logits.std() > 0.5 and probs.max(-1).mean() > 2.0 / 17


def test_bad_inputs_fail_clearly():
  model = DSTformer(dim_feat=32, dim_rep=16, depth=1, num_heads=4, maxlen=9)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3)))
  with pytest.raises(ValueError, match='longer than maxlen=9'):
    model.apply(variables, jnp.zeros((1, 10, 17, 3)))
  with pytest.raises(ValueError, match='17 joints'):
    model.apply(variables, jnp.zeros((1, 9, 16, 3)))
  with pytest.raises(ValueError, match='dim_in=3'):
    model.apply(variables, jnp.zeros((1, 9, 17, 2)))


# Stated bf16 tolerance (perturbed tiny model, O(1) outputs): mean abs error within 2% of the mean
# magnitude, worst element within 10% of the largest; measured ~0.9% and ~5.5%.
def _assert_bf16_close(out, ref):
  out = np.asarray(out, np.float32)
  err = np.abs(out - ref)
  assert err.mean() <= 0.02 * np.abs(ref).mean(), err.mean()
  assert err.max() <= 0.10 * np.abs(ref).max(), err.max()


@pytest.mark.parametrize('impl', ['einsum', 'matmul', 'xla'])
def test_bf16_close_to_fp32(pose_ref, impl):
  data, model, variables, _ = pose_ref
  out = model.clone(dtype=jnp.bfloat16, attention_impl=impl).apply(variables, data['x'])
  assert out.dtype == jnp.bfloat16
  _assert_bf16_close(out, data['out'])


def test_train_mode_dropout_drop_path_and_remat(pose_ref):
  data, model, variables, _ = pose_ref
  model = model.clone(drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.2)
  rngs = {'dropout': jax.random.key(3)}
  a = model.apply(variables, data['x'], train=True, rngs=rngs)
  b = model.clone(remat_policy='full').apply(variables, data['x'], train=True, rngs=rngs)
  np.testing.assert_allclose(a, b, atol=1e-5)
  assert _max_err(a, data['out']) > TOL  # dropout active in train mode
  np.testing.assert_allclose(model.apply(variables, data['x']), data['out'], atol=TOL)

  def loss(params, policy):
    out = model.clone(remat_policy=policy).apply({'params': params}, data['x'], train=True,
                                                 rngs=rngs)
    return jnp.mean(out ** 2)

  g_plain = jax.grad(loss)(variables['params'], 'none')
  g_remat = jax.grad(loss)(variables['params'], 'dots')
  for x, y in zip(jax.tree_util.tree_leaves(g_plain), jax.tree_util.tree_leaves(g_remat)):
    np.testing.assert_allclose(x, y, atol=1e-5)


def test_scanned_layers_match_official_and_convert_both_ways(pose_ref):
  from mbjax.models.dstformer import scan_params, unscan_params
  data, model, variables, state_dict = pose_ref
  scanned = model.clone(scan_layers=True)
  params = scan_params(variables['params'], model.depth)
  assert params['layers']['block_st']['attn_s']['qkv']['kernel'].shape[0] == model.depth
  assert _max_err(scanned.apply({'params': params}, data['x']), data['out']) <= TOL
  # Init of the scanned model has the same parameters, with a leading depth axis.
  init = meta.unbox(scanned.init(jax.random.key(0), data['x'][:, :4]))['params']
  assert count_params(init) == count_params(variables['params'])
  assert jax.tree_util.tree_structure(init) == jax.tree_util.tree_structure(params)
  back = unscan_params(params)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, variables['params'])
  exported = official.variables_to_official({'params': params}, 'pose')
  assert sorted(exported) == sorted(state_dict)
  for k in state_dict:
    np.testing.assert_array_equal(exported[k], state_dict[k])
  # Train mode (dropout, drop path) and remat run under scan too.
  train = scanned.clone(drop_path_rate=0.2, drop_rate=0.1, remat_policy='full')
  out = train.apply({'params': params}, data['x'], train=True,
                    rngs={'dropout': jax.random.key(1)})
  assert np.isfinite(np.asarray(out)).all() and _max_err(out, data['out']) > TOL
