"""Data: IDX reading, locating Fashion-MNIST on disk, in-memory batching, the DataModule."""
