"""`python -m skyqa`: the same CLI as the `skyqa` entry point."""

import sys

from skyqa.cli import main

sys.exit(main())
