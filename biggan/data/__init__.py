"""biggan.data."""
