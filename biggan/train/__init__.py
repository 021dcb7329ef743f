"""biggan.train."""
