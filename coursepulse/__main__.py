"""`python -m coursepulse` runs the CLI."""

import sys

from coursepulse.cli import main

sys.exit(main())
