"""``python -m bundler.crossversion``: the cross-version matrix (what ``bundler matrix`` runs)."""

import sys

from bundler.crossversion.cli import main

sys.exit(main())
