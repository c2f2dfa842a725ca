"""Importers for weights saved by the reference implementations, into ganzoo's networks."""
