"""biggan.models."""
