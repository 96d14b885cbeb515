"""``python -m dcqformat`` (and ``torchrun -m dcqformat``) runs the command line."""

import sys

from dcqformat.cli import main

sys.exit(main())
