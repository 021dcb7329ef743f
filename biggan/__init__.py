"""biggan: train BigGAN (Brock, Donahue, Simonyan 2019) on your own images and measure it.

This package does all the real work and never imports Prefect; `flows/` orders it.
"""

__version__ = "0.1.0"
