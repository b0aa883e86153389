"""goodfit: a Lightning + Hydra template for image-classification studies."""

__version__ = "0.1.0"
