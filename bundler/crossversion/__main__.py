"""``python -m bundler.crossversion``: the cross-version matrix (what ``bundler matrix`` runs)."""

import sys

from bundler.crossversion.matrix import main

sys.exit(main())
