"""`python -m hub.media --data DIR sync --once` (see cli.main)."""

import sys

from .cli import main

sys.exit(main())
