"""Flax networks vs the PyTorch reference networks on the same random weights (fp32)."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from convert import torch_networks as tn
from jaxsr.convert import layouts
from jaxsr.models import (SPECTRAL_COLLECTION, SRVGGNetCompact, UNetDiscriminatorSN,
                          VGG19Features, build_generator, for_inference)
from jaxsr.models import vgg as vgg_lib
from jaxsr.models import winograd

TOL = 1e-4


def numpy_state(module):
  return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def nhwc(t):
  return jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


def to_nchw(a):
  return np.asarray(a, np.float32).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("scale", [4, 2, 1])
@pytest.mark.parametrize("form", ["unrolled", "scanned"])  # Training's and inference's.
def test_generator_matches_pytorch(scale, form):
  torch.manual_seed(scale)
  net = tn.RRDBNet(scale=scale, num_block=3).eval()
  variables, arch = layouts.generator_from_torch(numpy_state(net))
  assert arch == dict(type="RRDBNet", scale=scale, num_feat=64, num_block=3, num_grow_ch=32,
                      num_out_ch=3)
  x = torch.rand(2, 3, 16, 24)
  with torch.no_grad():
    expected = net(x).numpy()
  generator = build_generator(arch)
  if form == "scanned":
    generator = for_inference(generator)
    assert generator.scan_body
  out = to_nchw(generator.apply(variables, nhwc(x)))
  assert out.shape == (2, 3, 16 * scale, 24 * scale)
  np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("scale", [4, 2])
def test_inference_form_on_cpu_computes_dense_blocks_by_winograd_and_matches_pytorch(
    scale, monkeypatch):
  """Body maps of 96x100: large enough (winograd.MIN_PIXELS) for `for_inference` on this CPU
  to compute every dense block by Winograd F(4x4, 3x3)."""
  calls = []
  dense_convs = winograd.dense_convs
  monkeypatch.setattr(winograd, "dense_convs", lambda *a, **k: calls.append(1) or dense_convs(*a, **k))
  torch.manual_seed(20 + scale)
  net = tn.RRDBNet(scale=scale, num_block=2).eval()
  variables, arch = layouts.generator_from_torch(numpy_state(net))
  x = torch.rand(1, 3, 96 * 4 // scale, 100 * 4 // scale)
  with torch.no_grad():
    expected = net(x).numpy()
  generator = for_inference(build_generator(arch))
  out = to_nchw(generator.apply(variables, nhwc(x)))
  assert generator.winograd and calls  # Traced once per block (the scan traces one RRDB).
  np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("scale,act_type", [(1, "prelu"), (2, "relu"), (3, "prelu"),
                                            (3, "leakyrelu"), (4, "prelu")])
def test_compact_generator_matches_pytorch(scale, act_type):
  """Pixel-shuffle channel order, the nearest-upsampled input added on top, every scale (x3
  included) and activation, on random weights (PReLU slopes spread over both signs)."""
  torch.manual_seed(10 + scale)
  net = tn.SRVGGNetCompact(num_feat=16, num_conv=4, upscale=scale, act_type=act_type).eval()
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.PReLU):
        module.weight.uniform_(-0.5, 0.5)
  hint = None if act_type == "prelu" else act_type  # Only PReLU shows in the weights.
  variables, arch = layouts.generator_from_torch(numpy_state(net), hint)
  assert arch == dict(type="SRVGGNetCompact", scale=scale, num_in_ch=3, num_out_ch=3,
                      num_feat=16, num_conv=4, act_type=act_type)
  x = torch.rand(2, 3, 13, 17)  # Odd sizes: the compact network takes any.
  with torch.no_grad():
    expected = net(x).numpy()
  module = SRVGGNetCompact(scale=scale, num_feat=16, num_conv=4, act_type=act_type)
  out = to_nchw(module.apply(variables, nhwc(x)))
  assert out.shape == (2, 3, 13 * scale, 17 * scale)
  np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_discriminator_train_mode_matches_pytorch_over_two_steps():
  torch.manual_seed(0)
  net = tn.UNetDiscriminatorSN().train()
  variables, arch = layouts.discriminator_from_torch(numpy_state(net))
  module = UNetDiscriminatorSN(**arch)
  for step in range(2):  # The second step starts from the u, v the first one stored.
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
      expected = net(x).numpy()
    out, updates = module.apply(variables, nhwc(x), train=True, mutable=[SPECTRAL_COLLECTION])
    np.testing.assert_allclose(to_nchw(out), expected, atol=TOL, rtol=0)
    torch_state = numpy_state(net)
    for name in [f"conv{i}" for i in range(1, 9)]:
      np.testing.assert_allclose(updates[SPECTRAL_COLLECTION][name]["u"],
                                 torch_state[f"{name}.weight_u"], atol=1e-5, err_msg=f"{step} {name}")
      np.testing.assert_allclose(updates[SPECTRAL_COLLECTION][name]["v"],
                                 torch_state[f"{name}.weight_v"], atol=1e-5, err_msg=f"{step} {name}")
    variables = {**variables, **updates}


def check_gradient(got, torch32, exact, name):
  """`got` is as close to PyTorch's float64 gradient `exact` as PyTorch's own float32 `torch32`
  (twice its error, plus 1e-6 of the gradient's scale)."""
  exact = np.asarray(exact, np.float64)
  torch_error = np.abs(np.asarray(torch32, np.float64) - exact).max()
  error = np.abs(np.asarray(got, np.float64) - exact).max()
  assert error <= 2 * torch_error + 1e-6 * np.abs(exact).max(), (name, error, torch_error)


def test_discriminator_gradients_match_pytorch_autograd():
  """Every parameter's and the input's gradient in train mode (one power iteration, gradients
  through sigma), against PyTorch's autograd in float64, as close as PyTorch's float32 gets. On
  the CPU the kernel gradients come from `conv_gradients`' matmuls, not autodiff."""

  def torch_gradients(dtype):
    torch.manual_seed(5)
    net = tn.UNetDiscriminatorSN().train().to(dtype)
    generator = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 32, 40, generator=generator).to(dtype).requires_grad_(True)
    tap = torch.randn(2, 1, 32, 40, generator=generator).to(dtype)
    state = numpy_state(net)  # Before the forward's power iteration moves u and v.
    (net(x) * tap).sum().backward()
    grads = {k.replace("weight_orig", "weight"): p.grad.numpy().astype(np.float32)
             for k, p in net.named_parameters()}
    return state, x, tap, grads, x.grad.numpy()

  state, x, tap, torch32, torch32_input = torch_gradients(torch.float32)
  _, _, _, exact, exact_input = torch_gradients(torch.float64)
  variables, arch = layouts.discriminator_from_torch(state)
  module = UNetDiscriminatorSN(**arch)

  def loss(params, x):
    out, _ = module.apply({**variables, "params": params}, x, train=True,
                          mutable=[SPECTRAL_COLLECTION])
    return jnp.sum(out * nhwc(tap))

  param_grads, input_grad = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], nhwc(x))

  check_gradient(to_nchw(input_grad), torch32_input, exact_input, "input")
  for name, layer in param_grads.items():
    check_gradient(layer["kernel"].transpose(3, 2, 0, 1), torch32[f"{name}.weight"],
                   exact[f"{name}.weight"], name)
    if "bias" in layer:
      check_gradient(layer["bias"], torch32[f"{name}.bias"], exact[f"{name}.bias"], f"{name}.bias")
  assert len(param_grads) == 10


def test_discriminator_eval_mode_uses_stored_vectors():
  torch.manual_seed(1)
  net = tn.UNetDiscriminatorSN().train()
  with torch.no_grad():  # One power iteration: sensible u, v that another iteration still moves.
    net(torch.rand(1, 3, 16, 16))
  state = numpy_state(net)
  net.eval()
  variables, arch = layouts.discriminator_from_torch(state)
  x = torch.rand(1, 3, 24, 24)
  with torch.no_grad():
    expected = net(x).numpy()
  out = UNetDiscriminatorSN(**arch).apply(variables, nhwc(x), train=False)
  np.testing.assert_allclose(to_nchw(out), expected, atol=TOL, rtol=0)
  # Eval mode must not have iterated (torch leaves its buffers alone too).
  np.testing.assert_array_equal(numpy_state(net)["conv1.weight_u"], state["conv1.weight_u"])
  trained = copy.deepcopy(net).train()
  with torch.no_grad():
    iterated = trained(x).numpy()
  assert np.abs(iterated - expected).max() > 100 * TOL, "test would not tell eval from train mode"


def vgg19_with_real_spread(seed):
  """A PyTorch VGG19 whose deep layers have the spread of real VGG weights (so their taps are not
  tiny numbers), and its Flax variables."""
  torch.manual_seed(seed)
  net = tn.VGG19()
  with torch.no_grad():
    for layer in net.features:
      if isinstance(layer, torch.nn.Conv2d):
        torch.nn.init.kaiming_normal_(layer.weight)
  return net, layouts.vgg19_from_torch(numpy_state(net))[0]


def test_vgg19_taps_match_torchvision_layout():
  net, variables = vgg19_with_real_spread(2)
  x = torch.rand(1, 3, 48, 48)
  indices = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}
  with torch.no_grad():
    expected = net.taps(x, list(indices.values()))
  taps = VGG19Features().apply(variables, nhwc(x))
  assert set(taps) == set(indices)
  for name, index in indices.items():
    ref = expected[index].numpy()
    got = to_nchw(taps[name])
    scale = np.abs(ref).max()
    assert scale > 0.1, name
    np.testing.assert_allclose(got, ref, atol=TOL * max(1.0, scale), rtol=0, err_msg=name)


@pytest.mark.parametrize("size", [16, 32])  # The dense blocks' concatenated and stacked forms.
def test_generator_gradients_match_pytorch_autograd(size):
  """Every parameter's and the input's gradient against PyTorch's autograd in float64, as close
  as PyTorch's own float32 autograd gets (the input gradient of a random-weight RRDBNet is
  sensitive: float32 PyTorch is 1 % of its largest value off at 32x32). At 16x16 the dense
  blocks' kernel gradients come from one matmul per block (rrdbnet's `_dense_kernel_gradients`),
  not from autodiff."""

  def torch_gradients(dtype):
    torch.manual_seed(size)
    net = tn.RRDBNet(num_block=2).to(dtype)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, size, size, generator=generator).to(dtype).requires_grad_(True)
    tap = torch.randn(2, 3, 4 * size, 4 * size, generator=generator).to(dtype)
    (net(x) * tap).sum().backward()  # A different weight for every output value.
    grads = {k: p.grad.numpy().astype(np.float32) for k, p in net.named_parameters()}
    return net, x, tap, layouts.generator_from_torch(grads)[0]["params"], x.grad.numpy()

  net, x, tap, torch32_params, torch32_input = torch_gradients(torch.float32)
  _, _, _, exact_params, exact_input = torch_gradients(torch.float64)
  variables, arch = layouts.generator_from_torch(numpy_state(net))
  module = build_generator(arch)
  loss = lambda params, x: jnp.sum(module.apply({"params": params}, x) * nhwc(tap))
  param_grads, input_grad = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], nhwc(x))

  check_gradient(to_nchw(input_grad), torch32_input, exact_input, "input")
  got = jax.tree.leaves_with_path(param_grads)
  assert len(got) == len(jax.tree.leaves(exact_params)) == len(net.state_dict())
  for (path, g), t32, exact in zip(got, jax.tree.leaves(torch32_params),
                                   jax.tree.leaves(exact_params)):
    check_gradient(g, t32, exact, jax.tree_util.keystr(path))


def test_frozen_vgg19_input_gradient_matches_pytorch_autograd():
  """The perceptual network's precomputed backward kernels give PyTorch's input gradient."""
  net, variables = vgg19_with_real_spread(4)
  indices = {"conv1_2": 2, "conv3_4": 16, "conv5_4": 34}
  x = torch.rand(2, 3, 32, 32, requires_grad=True)
  taps = net.taps(x, list(indices.values()))
  # Weight each tap differently so a gradient routed through the wrong layer shows.
  sum(w * (taps[i] ** 2).mean() for w, i in zip((1.0, 0.5, 0.25), indices.values())).backward()
  expected = x.grad.numpy()

  frozen = VGG19Features(layers=tuple(indices), frozen=True)
  frozen_vars = vgg_lib.with_backward_kernels(variables)

  def loss(images):
    out = frozen.apply(frozen_vars, images)
    return sum(w * jnp.mean(out[name] ** 2) for w, name in zip((1.0, 0.5, 0.25), indices))

  got = to_nchw(jax.grad(loss)(nhwc(x)))
  scale = np.abs(expected).max()
  assert scale > 0
  np.testing.assert_allclose(got, expected, atol=TOL * scale, rtol=0)
  # The kernels get no gradient: they are frozen (the bias add stays plain autodiff).
  param_grads = jax.grad(
      lambda v: sum(jnp.sum(t) for t in frozen.apply(v, nhwc(x)).values()))(frozen_vars)
  kernel_grads = [layer["kernel"] for layer in param_grads["params"].values()]
  assert kernel_grads and all(float(jnp.abs(g).max()) == 0 for g in kernel_grads)


def test_bf16_compute_keeps_fp32_params_and_stays_close():
  torch.manual_seed(3)
  net = tn.RRDBNet(scale=4, num_block=1).eval()
  variables, arch = layouts.generator_from_torch(numpy_state(net))
  x = torch.rand(1, 3, 12, 12)
  with torch.no_grad():
    expected = net(x).numpy()
  module = build_generator(arch, dtype=jnp.bfloat16)
  out = module.apply(variables, nhwc(x))
  assert out.dtype == jnp.bfloat16
  params = module.init(__import__("jax").random.key(0), nhwc(x))["params"]
  assert params["conv_first"]["kernel"].dtype == jnp.float32
  # bf16 has an 8-bit mantissa: ~1e-2 relative error through a residual network is expected.
  assert np.abs(to_nchw(out) - expected).max() < 5e-2
