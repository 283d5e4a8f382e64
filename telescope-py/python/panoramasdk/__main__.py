"""``python -m panoramasdk run APP_DIR``: see ``panoramasdk._run``."""

import sys

from panoramasdk._run import main

sys.exit(main())
