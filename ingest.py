"""`python ingest.py [PATH]`: the same as `python -m bot ingest [PATH]`."""

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
