"""`python -m biggan.cli`: the `biggan` command itself (the console script's entry point)."""

from biggan.cli.entry import run

if __name__ == "__main__":
    run()
