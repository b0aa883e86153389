"""Hydra glue: resolvers, key hints, the sweep callback, the one reader of HydraConfig."""
