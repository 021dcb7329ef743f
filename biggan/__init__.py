"""biggan: train BigGAN (Brock, Donahue, Simonyan 2019) on your own images and measure it.

This package does all the real work and never imports Prefect; `flows/` orders it.
"""

import logging

__version__ = "0.1.0"

# Progress lines are INFO records of this hierarchy (biggan/logs.py): enabled here, so whichever
# handler an entry point attaches (the CLI's console, Prefect's API handler) gets them; with no
# handler at all, Python's last resort still shows only warnings and errors.
logging.getLogger(__name__).setLevel(logging.INFO)
