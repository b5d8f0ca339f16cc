"""`python -m producers.importer` runs `levers-enqueue`."""

from producers.importer import main

raise SystemExit(main())
