"""Storage: the metadata schema, metric chunks, blob stores and migrations."""
