"""ganzoo: a PyTorch Lightning model zoo of GANs (DCGAN, CycleGAN, BigGAN)."""

__version__ = "0.1.0"
