"""LightningModules and what they are made of: the classifier, its stage metrics, fine-tuning."""

from goodfit.lit.classifier import Classifier

__all__ = ["Classifier"]
