"""``python -m ier`` runs the command-line interface."""

from ier.cli import main

raise SystemExit(main())
