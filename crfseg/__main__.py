"""``python -m crfseg`` runs the command-line interface."""

import sys

from crfseg.cli import main

sys.exit(main())
