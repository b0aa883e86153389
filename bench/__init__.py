"""Benchmarks and the GPU check: tools around goodfit, not part of the installed package."""
