"""`python -m pyflame` runs the command line."""

import sys

from pyflame.cli import main

sys.exit(main())
