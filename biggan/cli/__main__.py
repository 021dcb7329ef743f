"""`python -m biggan.cli`: the same as the `biggan` command."""

from biggan.cli import main

main()
