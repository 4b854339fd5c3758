"""A PyTorch reference of one Real-ESRGAN GAN fine-tuning iteration (BasicSR RealESRGANModel).

Used by tests (the JAX step must match it) and by the train-step benchmark (the same work in
PyTorch, timed on the same machine). Written from the recipe, not copied from BasicSR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# BasicSR's perceptual layers: torchvision VGG19 `features` index -> weight.
VGG_TAPS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}


def make_optimizers(net_g, net_d, lr=1e-4):
  return (torch.optim.Adam(net_g.parameters(), lr=lr, betas=(0.9, 0.99)),
          torch.optim.Adam(net_d.parameters(), lr=lr, betas=(0.9, 0.99)))


def realesrgan_step(net_g, net_d, vgg, opt_g, opt_d, batch, *, pixel_weight=1.0,
                    perceptual_weight=1.0, gan_weight=0.1, ema=None, ema_decay=0.999,
                    optimize_g=True):
  """One iteration: G step (L1 + perceptual on gt_usm, GAN on D), D step (real + fake), EMA.

  `batch` is (lq, gt, gt_usm) NCHW. Returns the loss terms as floats. `optimize_g=False` is an
  iteration of BasicSR's D warm-up (`current_iter <= net_d_init_iters`): G's output feeds D, but
  no G loss is computed (so D sees no G-step forward) and G is not stepped.
  """
  lq, gt, gt_usm = batch
  bce = torch.nn.BCEWithLogitsLoss()
  if not optimize_g:
    with torch.no_grad():
      out = net_g(lq)
    return _discriminator_step(net_d, opt_d, gt, out, bce, net_g, ema, ema_decay)
  for p in net_d.parameters():
    p.requires_grad = False
  opt_g.zero_grad()
  out = net_g(lq)
  l_pix = F.l1_loss(out, gt_usm)
  taps = list(VGG_TAPS)
  if vgg is not None and perceptual_weight:
    fo, fg = vgg.taps(out, taps), vgg.taps(gt_usm, taps)
    l_percep = sum(w * F.l1_loss(fo[i], fg[i].detach()) for i, w in VGG_TAPS.items())
  else:
    l_percep = torch.zeros(())
  fake = net_d(out)
  l_gan = bce(fake, torch.ones_like(fake))
  (pixel_weight * l_pix + perceptual_weight * l_percep + gan_weight * l_gan).backward()
  opt_g.step()
  return {"g/pixel": l_pix.item(), "g/perceptual": float(l_percep.detach()), "g/gan": l_gan.item(),
          **_discriminator_step(net_d, opt_d, gt, out, bce, net_g, ema, ema_decay)}


def _discriminator_step(net_d, opt_d, gt, out, bce, net_g, ema, ema_decay):
  """D step on GT (real) and G's output (fake), then the EMA of G; returns D's loss terms."""
  for p in net_d.parameters():
    p.requires_grad = True
  opt_d.zero_grad()
  real_pred = net_d(gt)
  l_real = bce(real_pred, torch.ones_like(real_pred))
  l_real.backward()
  fake_pred = net_d(out.detach().clone())
  l_fake = bce(fake_pred, torch.zeros_like(fake_pred))
  l_fake.backward()
  opt_d.step()

  if ema is not None:
    with torch.no_grad():
      for pe, p in zip(ema.parameters(), net_g.parameters()):
        pe.mul_(ema_decay).add_(p, alpha=1 - ema_decay)
  return {"d/real": l_real.item(), "d/fake": l_fake.item()}
