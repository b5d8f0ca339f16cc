"""`python -m worker.cli_admin` runs `levers-admin` (for environments without the script)."""

from worker.cli import admin_main

if __name__ == "__main__":
    raise SystemExit(admin_main())
