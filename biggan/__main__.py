"""`python -m biggan`: the `biggan` command itself (the console script's entry point, so `--debug`,
the reaper and one-line errors with the log's path behave the same)."""

from biggan.cli.entry import run

if __name__ == "__main__":
    run()
