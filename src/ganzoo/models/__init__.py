"""LightningModules: each owns its training step, optimizers and sampling API, and nothing else."""
