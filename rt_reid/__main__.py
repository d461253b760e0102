"""`python -m rt_reid` runs the `rt-reid` command line."""

import sys

from rt_reid.cli import main

sys.exit(main())
