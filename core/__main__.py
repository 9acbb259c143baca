"""``python -m v6alt`` runs the ``v6alt`` command."""

import sys

from .cli import main

sys.exit(main())
