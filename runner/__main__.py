"""``python -m runner``: the command line (``runner.cli.main``)."""

from runner.cli.main import main

if __name__ == "__main__":
    main()
