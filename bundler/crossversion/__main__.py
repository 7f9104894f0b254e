"""``python -m bundler.crossversion``: the cross-version matrix, exactly ``bundler matrix`` (through the CLI's error
handling). An entry point, like ``bundler/__main__.py``: it sits above the CLI, so the package itself never imports
``bundler.cli`` and the import graph keeps pointing one way (cli -> crossversion)."""

import sys

from bundler.cli import main

sys.exit(main(["matrix", *sys.argv[1:]]))
