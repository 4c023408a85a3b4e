"""Run a pgqueue worker: ``python worker.py --help`` lists every setting.

With no DATABASE_URL, an embedded PostgreSQL is started in ./.pgqueue, migrated, and its URL
printed, so this works on a fresh machine.
"""

import sys

from pgqueue.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
