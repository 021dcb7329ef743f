"""biggan.eval."""
