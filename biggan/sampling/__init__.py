"""biggan.sampling: latents and the truncation trick, standing statistics, generated image
streams and sample sheets. Training (progress sheets) and evaluation (scores) both stand on
it; it imports neither."""
