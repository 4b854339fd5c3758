"""The jitted GAN train step against a PyTorch implementation of BasicSR's RealESRGANModel step."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convert import torch_networks as tn
from convert import torch_training
from jaxsr.convert import layouts
from jaxsr.models import UNetDiscriminatorSN, VGG19Features, build_generator
from jaxsr.models import vgg as vgg_lib
from jaxsr.train import losses
from jaxsr.train import state as state_lib
from jaxsr.train.step import make_train_step

LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
VGG_INDEX = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}


def nhwc(t):
  return jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


def numpy_state(module):
  return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------------ single loss terms

def test_l1_and_bce_match_pytorch():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 5, 6, 3)).astype(np.float32), rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  assert np.isclose(float(losses.l1(a, b)), F.l1_loss(torch.from_numpy(a), torch.from_numpy(b)).item(),
                    atol=1e-6)
  logits = torch.from_numpy(a)
  for real in (True, False):
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    expected = F.binary_cross_entropy_with_logits(logits, target).item()
    assert np.isclose(float(losses.bce_with_logits(a, real)), expected, atol=1e-6)


def test_block_mean_l1_matches_scikit_image_block_means():
  from skimage.measure import block_reduce  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(1)
  a, b = rng.random((2, 16, 24, 3), np.float32), rng.random((2, 16, 24, 3), np.float32)
  for block in (1, 4, 8):
    means = lambda x: block_reduce(x.astype(np.float64), (1, block, block, 1), np.mean)
    expected = np.mean(np.abs(means(a) - means(b)))
    assert np.isclose(float(losses.block_mean_l1(a, b, block)), expected, rtol=1e-5), block
  # A uniform offset passes whole; zero-mean texture inside each block does not count.
  texture = np.tile(np.array([[0.1, -0.1], [-0.1, 0.1]], np.float32)[None, :, :, None], (2, 8, 12, 3))
  assert np.isclose(float(losses.block_mean_l1(a + 0.02 + texture, a, 8)), 0.02, rtol=1e-4)
  with pytest.raises(ValueError, match="divisible"):
    losses.block_mean_l1(a, b, 5)


def numpy_gradient_rms(x, block, eps=1e-6):
  """Per-square gradient RMS from np.diff and scikit-image's block means (float64)."""
  from skimage.measure import block_reduce  # pylint: disable=import-outside-toplevel

  x = x.astype(np.float64)
  energy = np.zeros_like(x)
  energy[:, :-1] += np.diff(x, axis=1) ** 2
  energy[:, :, :-1] += np.diff(x, axis=2) ** 2
  return np.sqrt(block_reduce(energy, (1, block, block, 1), np.mean) + eps)


def test_texture_energy_l1_matches_numpy_and_ignores_where_texture_sits():
  rng = np.random.default_rng(2)
  a, b = rng.random((2, 16, 24, 3), np.float32), rng.random((2, 16, 24, 3), np.float32)
  for block in (1, 4, 8):
    expected = np.mean(np.abs(numpy_gradient_rms(a, block) - numpy_gradient_rms(b, block)))
    assert np.isclose(float(losses.texture_energy_l1(a, b, block)), expected, rtol=1e-5), block
  flat = np.full((1, 16, 16, 1), 0.5, np.float32)
  checker = flat + 0.05 * (np.indices((16, 16)).sum(0) % 2 * 2 - 1)[None, :, :, None]
  # The same texture shifted by one pixel (opposite phase everywhere) costs nothing, ...
  shifted = np.roll(checker, 1, axis=2)
  assert np.abs(shifted - checker).max() > 0.09
  assert float(losses.texture_energy_l1(shifted, checker, 8)) < 0.002
  # ... an offset costs nothing, but smoothing the texture away costs its RMS gradient.
  assert float(losses.texture_energy_l1(checker + 0.1, checker, 8)) < 1e-6
  smoothed = float(losses.texture_energy_l1(flat, checker, 8))
  assert np.isclose(smoothed, np.mean(numpy_gradient_rms(checker, 8)) - 1e-3, rtol=1e-3)
  assert np.isclose(smoothed, float(losses.texture_energy_l1(checker, flat, 8)))
  with pytest.raises(ValueError, match="divisible"):
    losses.texture_energy_l1(a, b, 5)


def tiny_networks(seed):
  """A 1-block, 8-feature G and an 8-feature D in PyTorch (after torch.manual_seed(seed)), their
  Flax variables and archs, and the recipe's Adam for each."""
  torch.manual_seed(seed)
  net_g = tn.RRDBNet(scale=4, num_block=1, num_feat=8, num_grow_ch=4)
  net_d = tn.UNetDiscriminatorSN(num_feat=8)
  g_vars, g_arch = layouts.generator_from_torch(numpy_state(net_g))
  d_vars, d_arch = layouts.discriminator_from_torch(numpy_state(net_d))
  opt = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  return net_g, net_d, (g_vars, g_arch), (d_vars, d_arch), (state_lib.adam(opt), state_lib.adam(opt))


def assert_first_adam_step(before, after, torch_grads, lr=1e-4):
  """Adam's first step moved every G parameter by -lr * g / (|g| + eps), g PyTorch's gradient."""
  grads = layouts.generator_from_torch(torch_grads)[0]["params"]
  checked = 0
  for got, start, g in zip(jax.tree.leaves(after), jax.tree.leaves(before), jax.tree.leaves(grads)):
    clear = np.abs(g) > 1e-6
    checked += clear.sum()
    want = np.asarray(start) - lr * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(np.asarray(got)[clear], want[clear], atol=1e-6)
  assert checked > 0.5 * sum(g.size for g in jax.tree.leaves(grads))


def torch_block_mean_l1(sr, gt):
  return F.l1_loss(F.avg_pool2d(sr, 8), F.avg_pool2d(gt, 8))


def torch_texture_energy_l1(sr, gt):
  def rms(x):
    energy = torch.zeros_like(x)
    energy[:, :, :-1] += (x[:, :, 1:] - x[:, :, :-1]) ** 2
    energy[:, :, :, :-1] += (x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2
    return torch.sqrt(F.avg_pool2d(energy, 8) + 1e-6)

  return F.l1_loss(rms(sr), rms(gt))


@pytest.mark.parametrize("metric, torch_loss, weights", [
    ("g/low_frequency", torch_block_mean_l1, dict(low_frequency_weight=1.0, low_frequency_block=8)),
    ("g/texture", torch_texture_energy_l1, dict(texture_weight=1.0, texture_block=8)),
])
def test_an_optional_g_term_adds_its_pytorch_gradient(metric, torch_loss, weights):
  net_g, _, (g_vars, g_arch), (d_vars, d_arch), (g_tx, d_tx) = tiny_networks(3)
  lq, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
  expected_loss = torch_loss(net_g(lq), gt)
  expected_loss.backward()
  torch_grads = {k: p.grad.numpy().copy() for k, p in net_g.named_parameters()}

  state = state_lib.create(g_vars["params"], d_vars, g_tx, d_tx)
  config = loss_config()  # Only the optional term moves G:
  config.update(pixel_weight=0.0, gan_weight=0.0, **weights)
  step = jax.jit(make_train_step(build_generator(g_arch), UNetDiscriminatorSN(**d_arch), None,
                                 config, g_tx, d_tx))
  # The term compares with GT itself, not the sharpened GT of the pixel and perceptual terms.
  batch = {"lq": nhwc(lq), "gt": nhwc(gt), "gt_usm": nhwc(0.5 * gt)}
  new_state, metrics = step(state, batch, None)
  assert np.isclose(float(metrics[metric]), expected_loss.item(), rtol=1e-5)
  assert np.isclose(float(metrics["g/total"]), expected_loss.item(), rtol=1e-5)
  assert_first_adam_step(state.g_params, new_state.g_params, torch_grads)


def test_perceptual_matches_basicsr_formula():
  torch.manual_seed(0)
  vgg = tn.VGG19()
  variables, _ = layouts.vgg19_from_torch(numpy_state(vgg))
  x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
  with torch.no_grad():
    fx, fy = vgg.taps(x, list(VGG_INDEX.values())), vgg.taps(y, list(VGG_INDEX.values()))
    expected = sum(w * F.l1_loss(fx[VGG_INDEX[k]], fy[VGG_INDEX[k]]).item() for k, w in LAYER_WEIGHTS.items())
  module = VGG19Features()
  got = losses.perceptual(lambda im, grad_rows: module.apply(variables, im), nhwc(x), nhwc(y),
                          LAYER_WEIGHTS)
  assert np.isclose(float(got), expected, rtol=1e-5)


def test_perceptual_gradient_of_the_frozen_network_matches_pytorch_autograd():
  """Through the frozen VGG19 (precomputed backward kernels, input gradient of the prediction
  rows only): the prediction's gradient is PyTorch's for BasicSR's formula."""
  torch.manual_seed(1)
  vgg = tn.VGG19()
  with torch.no_grad():  # The spread of real VGG weights, so deep taps are not tiny numbers.
    for layer in vgg.features:
      if isinstance(layer, torch.nn.Conv2d):
        torch.nn.init.kaiming_normal_(layer.weight)
  variables, _ = layouts.vgg19_from_torch(numpy_state(vgg))
  x = torch.rand(2, 3, 32, 32, requires_grad=True)
  y = torch.rand(2, 3, 32, 32)
  fx, fy = vgg.taps(x, list(VGG_INDEX.values())), vgg.taps(y, list(VGG_INDEX.values()))
  sum(w * F.l1_loss(fx[VGG_INDEX[k]], fy[VGG_INDEX[k]].detach())
      for k, w in LAYER_WEIGHTS.items()).backward()
  expected = x.grad.numpy().transpose(0, 2, 3, 1)

  frozen = VGG19Features(frozen=True)
  frozen_vars = vgg_lib.with_backward_kernels(variables)
  features_fn = lambda im, grad_rows: frozen.apply(frozen_vars, im, grad_rows)
  got = jax.grad(lambda pred: losses.perceptual(features_fn, pred, nhwc(y), LAYER_WEIGHTS))(nhwc(x))
  scale = np.abs(expected).max()
  assert scale > 0
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4 * scale, rtol=0)
  with pytest.raises(ValueError, match="frozen"):
    VGG19Features().apply(variables, nhwc(x), 1)


# ------------------------------------------------------------------------ the whole step

def torch_reference_step(net_g, net_d, vgg, batch, weights):
  """One RealESRGANModel iteration in PyTorch; returns both networks' gradients and the losses."""
  opt_g, opt_d = torch_training.make_optimizers(net_g, net_d)
  losses_ = torch_training.realesrgan_step(
      net_g, net_d, vgg, opt_g, opt_d, batch, pixel_weight=weights["pixel"],
      perceptual_weight=weights["percep"], gan_weight=weights["gan"])
  grads = {name: {k: p.grad.numpy().copy() for k, p in net.named_parameters()}
           for name, net in (("g", net_g), ("d", net_d))}
  return grads, losses_


def loss_config():
  return ml_collections.ConfigDict(dict(
      pixel_weight=1.0, perceptual_weight=1.0, gan_weight=0.1, ema_decay=0.999,
      perceptual_layer_weights=LAYER_WEIGHTS, d_warmup_steps=0))


@pytest.mark.slow
def test_train_step_matches_pytorch_realesrgan_step():
  torch.manual_seed(0)
  net_g = tn.RRDBNet(scale=4, num_block=1, num_feat=16, num_grow_ch=8)
  net_d = tn.UNetDiscriminatorSN(num_feat=16)
  vgg = tn.VGG19().eval()
  for p in vgg.parameters():
    p.requires_grad = False
  g_vars, g_arch = layouts.generator_from_torch(numpy_state(net_g))
  d_vars, d_arch = layouts.discriminator_from_torch(numpy_state(net_d))
  vgg_vars, _ = layouts.vgg19_from_torch(numpy_state(vgg))
  vgg_vars = vgg_lib.with_backward_kernels(vgg_vars)  # As the trainer's perceptual network.
  # A "pretrained" EMA that differs from the weights being trained, so the EMA formula shows.
  ema_before = jax.tree.map(lambda a: a * 0.5, g_vars["params"])

  lq, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
  gt_usm = torch.clamp(gt * 1.1, 0, 1)
  grads, torch_losses = torch_reference_step(
      net_g, net_d, vgg, (lq, gt, gt_usm), {"pixel": 1.0, "percep": 1.0, "gan": 0.1})

  opt = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  g_tx, d_tx = state_lib.adam(opt), state_lib.adam(opt)
  state = state_lib.create(g_vars["params"], d_vars, g_tx, d_tx).replace(ema_params=ema_before)
  vgg_module = VGG19Features(frozen=True)
  step = jax.jit(make_train_step(build_generator(g_arch), UNetDiscriminatorSN(**d_arch),
                                 lambda p, x, grad_rows: vgg_module.apply(p, x, grad_rows),
                                 loss_config(), g_tx, d_tx))
  batch = {"lq": nhwc(lq), "gt": nhwc(gt), "gt_usm": nhwc(gt_usm)}
  new_state, metrics = step(state, batch, vgg_vars)

  for name, value in torch_losses.items():
    assert np.isclose(float(metrics[name]), value, rtol=1e-4, atol=1e-6), name
  assert int(new_state.step) == 1

  def flat(tree):
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(tree)}

  # Adam's first step moves each weight by lr * g / (|g| + eps): ~lr * sign(g). A 1e-6 tolerance
  # (1% of lr) checks sign and update rule for every weight whose gradient is above 1e-6; below,
  # float32 summation noise in g (~1e-3 relative) moves lr * g / (|g| + eps) by more than 1e-6,
  # so those weights are only held to |difference| <= 2 lr.
  def check_adam_step(got_params, expected_params, torch_grads, from_torch):
    grad_flat = flat(from_torch(torch_grads | extra_buffers(from_torch))[0]["params"])
    checked = 0
    for k, v in flat(expected_params).items():
      got, clear = flat(got_params)[k], np.abs(grad_flat[k]) > 1e-6
      checked += clear.sum()
      np.testing.assert_allclose(got[clear], v[clear], atol=1e-6, err_msg=k)
      np.testing.assert_allclose(got[~clear], v[~clear], atol=2e-4, err_msg=k)
    assert checked > 0.5 * sum(v.size for v in grad_flat.values())

  def extra_buffers(from_torch):  # Spectral-norm buffers carry no gradient; fill their slots.
    return {k: v for k, v in numpy_state(net_d).items() if k.endswith(("_u", "_v"))} \
        if from_torch is layouts.discriminator_from_torch else {}

  # The logged norms against NumPy's (float64) of PyTorch's gradients and updated weights.
  def norm(arrays):
    return np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays))

  for net, name in ((net_g, "g"), (net_d, "d")):
    np.testing.assert_allclose(float(metrics[f"{name}/grad_norm"]), norm(grads[name].values()),
                               rtol=1e-4, err_msg=name)
    weights = [v for k, v in numpy_state(net).items() if not k.endswith(("_u", "_v"))]
    np.testing.assert_allclose(float(metrics[f"{name}/param_norm"]), norm(weights), rtol=1e-6,
                               err_msg=name)

  g_expected, _ = layouts.generator_from_torch(numpy_state(net_g))
  check_adam_step(new_state.g_params, g_expected["params"], grads["g"], layouts.generator_from_torch)
  d_expected, _ = layouts.discriminator_from_torch(numpy_state(net_d))
  check_adam_step(new_state.d_params, d_expected["params"], grads["d"], layouts.discriminator_from_torch)
  # Three power iterations (G step, real pass, fake pass), as the PyTorch buffers saw.
  for k, v in flat(d_expected["spectral"]).items():
    np.testing.assert_allclose(flat(new_state.d_spectral)[k], v, atol=1e-5, err_msg=k)
  # EMA after both steps: 0.999 * previous EMA + 0.001 * the updated weights.
  for k, before in flat(ema_before).items():
    after = flat(new_state.g_params)[k]
    np.testing.assert_allclose(flat(new_state.ema_params)[k], 0.999 * before + 0.001 * after,
                               rtol=1e-6, atol=1e-7, err_msg=k)


def test_discriminator_warmup_holds_g_and_steps_d_as_basicsr_then_trains_g():
  # BasicSR's net_d_init_iters = 1: the first iteration steps D alone on the starting G's
  # output (two spectral-norm iterations: no G-step D call), G is held; the next one trains G.
  net_g, net_d, (g_vars, g_arch), (d_vars, d_arch), (g_tx, d_tx) = tiny_networks(2)
  lq, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
  gt_usm = torch.clamp(gt * 1.1, 0, 1)
  opt_g, opt_d = torch_training.make_optimizers(net_g, net_d)
  torch_losses = torch_training.realesrgan_step(net_g, net_d, None, opt_g, opt_d,
                                                (lq, gt, gt_usm), optimize_g=False)

  state = state_lib.create(g_vars["params"], d_vars, g_tx, d_tx)
  config = loss_config()
  config.d_warmup_steps = 1
  step = jax.jit(make_train_step(build_generator(g_arch), UNetDiscriminatorSN(**d_arch), None,
                                 config, g_tx, d_tx))
  batch = {"lq": nhwc(lq), "gt": nhwc(gt), "gt_usm": nhwc(gt_usm)}
  held, metrics = step(state, batch, None)
  for name in ("d/real", "d/fake"):
    assert np.isclose(float(metrics[name]), torch_losses[name], rtol=1e-4), name
  for a, b in zip(jax.tree.leaves(held.g_params), jax.tree.leaves(state.g_params)):
    np.testing.assert_array_equal(a, b)  # G untouched, Adam state too.
  assert int(held.g_opt_state[0].count) == 0
  d_expected, _ = layouts.discriminator_from_torch(numpy_state(net_d))
  for got, want in zip(jax.tree.leaves(held.d_params), jax.tree.leaves(d_expected["params"])):
    diff = np.abs(np.asarray(got, np.float64) - want)  # Adam's first step ~ lr * sign(g).
    assert diff.max() <= 2e-4 and np.mean(diff > 1e-6) < 0.02
  for got, want in zip(jax.tree.leaves(held.d_spectral), jax.tree.leaves(d_expected["spectral"])):
    np.testing.assert_allclose(got, want, atol=1e-5)

  trained, _ = step(held, batch, None)  # Step 1 >= warm-up: G's first Adam step.
  moved = [np.abs(np.asarray(a) - b).max() for a, b in
           zip(jax.tree.leaves(trained.g_params), jax.tree.leaves(held.g_params))]
  assert min(moved) > 0.5e-4  # Every G tensor moves by about lr.


def test_adam_of_the_recipe_equals_numpy_adam_over_several_steps():
  # One step cannot see b1, b2 or eps (bias correction makes the first update lr * g / (|g| +
  # eps) for any b1, b2), so five steps with gradients whose size changes each step (some
  # near eps). Updates are compared, not float32 parameters, whose rounding would dominate.
  from jaxsr.train.config import base_config

  opt = base_config().optimizer
  assert (opt.lr, opt.b1, opt.b2) == (1e-4, 0.9, 0.99)  # The paper's / BasicSR's values.
  tx = state_lib.adam(opt)
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.standard_normal((4, 5)), jnp.float32)}
  state = tx.init(params)
  m = v = 0.0
  for t in range(1, 6):
    g = (rng.standard_normal((4, 5)) * 10.0 ** rng.uniform(-8, 1)).astype(np.float32)
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    m = opt.b1 * m + (1 - opt.b1) * g.astype(np.float64)
    v = opt.b2 * v + (1 - opt.b2) * g.astype(np.float64) ** 2
    m_hat, v_hat = m / (1 - opt.b1 ** t), v / (1 - opt.b2 ** t)
    np.testing.assert_allclose(np.asarray(updates["w"]), -opt.lr * m_hat / (np.sqrt(v_hat) + opt.eps),
                               rtol=1e-5, atol=1e-12, err_msg=f"step {t}")


def test_debiased_ema_is_the_decay_weighted_mean_of_the_trained_generators():
  # NumPy reference: after t G updates, sum_s decay**(t-s) * G_s / sum_s decay**(t-s) over the
  # trained generators G_1..G_t; the starting weights and the D warm-up step take no part.
  _, _, (g_vars, g_arch), (d_vars, d_arch), (g_tx, d_tx) = tiny_networks(4)
  rng = np.random.default_rng(4)
  batch = {"lq": jnp.asarray(rng.random((2, 8, 8, 3), np.float32)),
           "gt": jnp.asarray(rng.random((2, 32, 32, 3), np.float32))}
  batch["gt_usm"] = batch["gt"]
  decay = 0.5
  config = loss_config()
  config.update(ema_decay=decay, ema_debias=True, d_warmup_steps=1)
  step = jax.jit(make_train_step(build_generator(g_arch), UNetDiscriminatorSN(**d_arch), None,
                                 config, g_tx, d_tx))
  state = state_lib.create(g_vars["params"], d_vars, g_tx, d_tx)
  start = [np.asarray(x, np.float64) for x in jax.tree.leaves(state.g_params)]
  trained = []
  state, _ = step(state, batch, None)  # The D warm-up step: G held, the EMA stays the start.
  for got, want in zip(jax.tree.leaves(state.ema_params), start):
    np.testing.assert_array_equal(got, want)
  for t in range(1, 5):
    state, _ = step(state, batch, None)
    trained.append([np.asarray(x, np.float64) for x in jax.tree.leaves(state.g_params)])
    weights = decay ** (t - np.arange(1, t + 1))
    farthest = 0.0
    for i, got in enumerate(jax.tree.leaves(state.ema_params)):
      want = sum(w * g[i] for w, g in zip(weights, trained)) / weights.sum()
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-8, err_msg=f"update {t}")
      # The original's EMA (started at the pretrained weights) is measurably elsewhere.
      plain = decay ** t * start[i] + (1 - decay) * sum(w * g[i] for w, g in zip(weights, trained))
      farthest = max(farthest, np.abs(plain - want).max())
    assert farthest > 1e-5, t
