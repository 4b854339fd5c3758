"""retina-x2 on the study's held-out fundus images, two generators with and without the lock.

    python docs/results/finetune/intensity-lock/retina_lock.py FINE_TUNED PRETRAINED OUT_DIR

(`jaxsr.evaluate`'s `--intensity-lock` applies to every model of a run, and the table pairs each
generator with and without the lock on the same images, so this calls the same
`jaxsr.evaluate.run.evaluate` the study uses with four models. The images alone are
`--data 'bundled:heldout:retina.jpg[bottom],microaneurysms.png'` on the command line.)
"""
import sys

from jaxsr.infer import devices

devices.use_cpu_cores()  # Before JAX starts, as the commands do.

from jaxsr.evaluate import models, protocols, run  # pylint: disable=wrong-import-position

fine_tuned, pretrained, out_dir = sys.argv[1:4]
config = protocols.get_protocol("retina-x2")
config.report.n_bootstrap = 200
nets = {}
for lock in (0.0, 2.0):
  suffix = f"+lock{lock:g}" if lock else ""
  nets["pretrained" + suffix] = models.NetworkModel(models.check(pretrained, "p"),
                                                    intensity_lock=lock)
  nets["fine-tuned" + suffix] = models.NetworkModel(models.check(fine_tuned, "f"),
                                                    intensity_lock=lock)
images = run.source_images("bundled:heldout", ["retina.jpg[bottom]", "microaneurysms.png"])
run.evaluate(images, nets, config, out_dir, progress=False)
