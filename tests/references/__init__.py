"""Hand-written reference implementations that ganzoo is compared against, in one place.

- :mod:`tests.references.dcgan`: pytorch/examples' DCGAN ``netG``/``netD``, layer for layer.
- :mod:`tests.references.cyclegan`: the official CycleGAN ResNet generator, PatchGAN discriminator, the way it
  saves weights, and its linear learning-rate decay rule.
- :mod:`tests.references.biggan`: a functional re-implementation of BigGAN-PyTorch's eval forward.
- :mod:`tests.references.loops`: plain-PyTorch training loops (DCGAN, CycleGAN, BigGAN) written from the
  references' training scripts; the tests prove ganzoo's steps equal them weight for weight and ``make bench``
  times ganzoo against them.

Nothing here imports Lightning: the plain loops are timed in processes that never load it.
"""
