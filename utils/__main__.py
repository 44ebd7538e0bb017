"""`python -m utils explain IMAGE... [options]`: see utils/cli.py, or run `python -m utils explain --help`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
