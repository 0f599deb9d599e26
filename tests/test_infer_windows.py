"""mbjax.infer windows, blending, depth references, official parity (WildDetDataset, boxing2)."""

import math

import numpy as np
import pytest

from mbjax.data import shipped, transforms
from mbjax.data import keypoint_files, person_tracks
from mbjax.infer import lift, windows

BOXING2 = shipped.CHECKOUT_ASSETS / 'wild' / 'boxing2_alphapose-results.json'


class Recorder:
  """A fake model: records every batch it is given and returns `fn(batch)`."""

  def __init__(self, fn=lambda x: np.zeros(x.shape[:3] + (3,), np.float32)):
    self.fn, self.batches = fn, []

  def __call__(self, x):
    self.batches.append(np.array(x))
    return self.fn(np.asarray(x))


# ------------------------------------------------------------------------------ window split

@pytest.mark.parametrize('length', [1, 26, 27, 28, 54, 301])
def test_stride_clip_len_is_the_official_split(length):
  clip_len = 27
  official = [(k * clip_len, min((k + 1) * clip_len, length))  # WildDetDataset.__getitem__
              for k in range(math.ceil(length / clip_len))]
  assert windows.windows(length, clip_len, clip_len) == official
  assert windows.official_windows(length, clip_len) == official


def test_overlapping_windows_cover_every_frame_with_full_windows():
  bounds = windows.windows(100, 27, 9)
  assert bounds[0] == (0, 27) and bounds[-1] == (73, 100)
  assert all(e - s == 27 for s, e in bounds)
  assert windows.windows(20, 27, 9) == [(0, 20)]  # short: one window of its own length
  with pytest.raises(ValueError, match='--stride=28'):
    windows.windows(100, 27, 28)
  w = windows.blend_weights(27)
  assert np.all(w > 0) and w.argmax() == 13 and np.allclose(w, w[::-1])


# ------------------------------------------------------------------------------ blending

def _identity(x):
  return np.array(x[..., :3], np.float32)


def _relative_depth(x):
  """Like a rootrel=False model: z relative to the root depth of the clip's first frame."""
  out = _identity(x)
  out[..., 2] -= out[:, :1, :1, 2]
  return out


def _motion(length=100, seed=0):
  rng = np.random.default_rng(seed)
  x = np.cumsum(rng.normal(0, 0.02, (length, 17, 3)), axis=0)
  return np.clip(x, -1, 1).astype(np.float32)


@pytest.mark.parametrize('stride', [1, 5, 9, 26])
def test_blending_identical_predictions_reproduces_them(stride):
  x = _motion()
  opts = lift.Options(clip_len=27, stride=stride, flip=True, rootrel=True)
  out = lift.lift(Recorder(_identity), {3: x}, opts)[3]
  want = x.copy()
  want[:, 0] = 0  # rootrel: the root is set to 0, as officially
  np.testing.assert_allclose(out, want, atol=2e-7)


def test_depths_of_overlapping_windows_share_one_reference():
  x = _motion()
  opts = lift.Options(clip_len=27, stride=9, flip=False, rootrel=False)
  out = lift.lift(Recorder(_relative_depth), {0: x}, opts)[0]
  want = x.copy()
  want[..., 2] -= x[0, 0, 2]
  np.testing.assert_allclose(out, want, atol=1e-6)


def test_official_windows_concatenate_and_zero_the_first_root_depth():
  x = _motion()
  opts = lift.Options(clip_len=27, stride=27, flip=False, rootrel=False)
  out = lift.lift(Recorder(_relative_depth), {0: x}, opts)[0]
  for s, e in windows.official_windows(100, 27):
    want = _relative_depth(x[None, s:e])[0]
    want[0, 0, 2] = 0  # official: predicted_3d_pos[:, 0, 0, 2] = 0
    np.testing.assert_array_equal(out[s:e], want)


def test_seam_jitter_finds_a_jump():
  x = np.zeros((60, 17, 3))
  x[30:, :, 0] += 1.0
  r = windows.seam_jitter(x, [30])
  assert r['seam'] == pytest.approx(1.0) and r['elsewhere'] == 0 and r['seam_frames'] == 2


# ------------------------------------------------------------------------------ official parity

@pytest.fixture(scope='module')
def boxing2():
  tracks, _ = person_tracks.tracks(keypoint_files.read(BOXING2), focus=1)
  return tracks[1]


@pytest.mark.parametrize('mode', ['default', 'pixel'])
def test_model_input_equals_official_wild_det_dataset(reference_dir, boxing2, mode):
  ref = np.load(reference_dir / 'wild_boxing2_official.npz')
  size = tuple(int(v) for v in ref['vid_size'])
  x, norm = lift.normalise(boxing2.keypoints, 'crop' if mode == 'default' else 'pixel', size)
  model = Recorder()
  lift.lift(model, {1: x}, lift.Options(clip_len=243, stride=243, flip=True, rootrel=False))
  bounds = [tuple(b) for b in ref['clip_bounds'].tolist()]
  assert windows.windows(len(x), 243, 243) == bounds
  # What the model was fed: each official clip, then its mirror image (official flip test).
  fed = [b[0] for b in model.batches]
  assert [len(f) for f in fed] == [58, 58, 243, 243]  # one compiled shape per clip length
  for k, (s, e) in enumerate(sorted(bounds, key=lambda b: b[1] - b[0])):
    np.testing.assert_allclose(fed[2 * k], ref[f'input_{mode}'][s:e], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fed[2 * k + 1], ref[f'input_{mode}_flip'][s:e], rtol=0, atol=1e-6)
  if mode == 'pixel':  # the official output conversion: x * min(w, h) / 2 + (w, h) / 2
    p = np.ones((1, 1, 3), np.float32)
    np.testing.assert_allclose(norm.to_pixels(p)[0, 0], [size[0] / 2 + 540, size[1] / 2 + 540,
                                                         540])


def test_crop_box_inverts_the_crop_normalisation(boxing2):
  x, norm = lift.normalise(boxing2.keypoints)
  back = norm.to_pixels(np.concatenate([x[..., :2], np.zeros_like(x[..., :1])], axis=-1))
  np.testing.assert_allclose(back[..., :2], boxing2.keypoints[..., :2], atol=1e-3)
  np.testing.assert_array_equal(x, transforms.crop_scale_2d(boxing2.keypoints).astype(np.float32))
