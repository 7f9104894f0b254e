"""``python -m bundler`` runs the CLI."""

from bundler.cli import main

raise SystemExit(main())
