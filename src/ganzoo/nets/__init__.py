"""Networks as plain ``nn.Module``s: they know nothing of Lightning, losses or optimizers."""
