"""`python -m worker.admin` runs `levers-admin`."""

from worker.admin import main

raise SystemExit(main())
