"""PyTorch reference networks, written from the Real-ESRGAN / BasicSR architecture description.

They exist to check jaxsr against: parity tests run the same weights through these and through
the Flax networks, and exported `.pth` files must load into them with `strict=True` (their
state-dict keys are the official ones). No Flax, no JAX here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class ResidualDenseBlock(nn.Module):

  def __init__(self, num_feat=64, num_grow_ch=32):
    super().__init__()
    self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
    self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
    self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
    self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
    self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

  def forward(self, x):
    lrelu = lambda t: F.leaky_relu(t, 0.2)
    x1 = lrelu(self.conv1(x))
    x2 = lrelu(self.conv2(torch.cat((x, x1), 1)))
    x3 = lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
    x4 = lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
    x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
    return x5 * 0.2 + x


class RRDB(nn.Module):

  def __init__(self, num_feat, num_grow_ch=32):
    super().__init__()
    self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

  def forward(self, x):
    return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
  """NCHW generator; scale 2 / 1 pixel-unshuffle the input by 2 / 4 first."""

  def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
    super().__init__()
    self.scale = scale
    in_ch = num_in_ch * (16 // (scale * scale)) if scale < 4 else num_in_ch
    self.conv_first = nn.Conv2d(in_ch, num_feat, 3, 1, 1)
    self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
    self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

  def forward(self, x):
    if self.scale < 4:
      x = F.pixel_unshuffle(x, 4 // self.scale)
    feat = self.conv_first(x)
    feat = feat + self.conv_body(self.body(feat))
    lrelu = lambda t: F.leaky_relu(t, 0.2)
    feat = lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
    feat = lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
    return self.conv_last(lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
  """NCHW compact generator: convs (each but the last followed by an activation) in one `body`
  list, pixel shuffle, plus the nearest-upsampled input."""

  def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4,
               act_type="prelu"):
    super().__init__()
    self.upscale = upscale
    activation = {"relu": lambda: nn.ReLU(inplace=True),
                  "prelu": lambda: nn.PReLU(num_parameters=num_feat),
                  "leakyrelu": lambda: nn.LeakyReLU(negative_slope=0.1, inplace=True)}[act_type]
    self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), activation()])
    for _ in range(num_conv):
      self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
      self.body.append(activation())
    self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
    self.upsampler = nn.PixelShuffle(upscale)

  def forward(self, x):
    out = x
    for layer in self.body:
      out = layer(out)
    out = self.upsampler(out)
    return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


class UNetDiscriminatorSN(nn.Module):
  """NCHW U-Net discriminator with spectral norm on conv1..conv8."""

  def __init__(self, num_in_ch=3, num_feat=64, skip_connection=True):
    super().__init__()
    self.skip_connection = skip_connection
    nf = num_feat
    self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
    self.conv1 = spectral_norm(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
    self.conv2 = spectral_norm(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
    self.conv3 = spectral_norm(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
    self.conv4 = spectral_norm(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
    self.conv5 = spectral_norm(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
    self.conv6 = spectral_norm(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
    self.conv7 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
    self.conv8 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
    self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

  def forward(self, x):
    act = lambda t: F.leaky_relu(t, 0.2)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
    x0 = act(self.conv0(x))
    x1 = act(self.conv1(x0))
    x2 = act(self.conv2(x1))
    x3 = act(self.conv3(x2))
    x4 = act(self.conv4(up(x3)))
    if self.skip_connection:
      x4 = x4 + x2
    x5 = act(self.conv5(up(x4)))
    if self.skip_connection:
      x5 = x5 + x1
    x6 = act(self.conv6(up(x5)))
    if self.skip_connection:
      x6 = x6 + x0
    out = act(self.conv7(x6))
    out = act(self.conv8(out))
    return self.conv9(out)


# torchvision's vgg19 `features` layout: channels per conv, "M" = 2x2 max-pool.
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def vgg19_features() -> nn.Sequential:
  """torchvision's `vgg19().features` (same module indices, so `features.N.weight` keys load)."""
  layers, in_ch = [], 3
  for item in _VGG19_CFG:
    if item == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(in_ch, item, 3, 1, 1), nn.ReLU(inplace=False)]
      in_ch = item
  return nn.Sequential(*layers)


class VGG19(nn.Module):
  """Holds `features` so a torchvision `vgg19-dcbb9e9d.pth` feature subset loads by key."""

  def __init__(self):
    super().__init__()
    self.features = vgg19_features()

  def taps(self, x, indices):
    """Outputs of `features[i]` (the conv, i.e. before its ReLU) for each i in `indices`, x in [0, 1]."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
    out = {}
    for i, layer in enumerate(self.features):
      x = layer(x)
      if i in indices:
        out[i] = x
      if i >= max(indices):
        break
    return out
