"""``python -m rfb``: the command line (see rfb.cli)."""

import sys

from rfb.cli import main

sys.exit(main())
