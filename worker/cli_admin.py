"""`python -m worker.cli_admin` runs `levers-admin` (for environments without the script)."""

from worker.admin import main

if __name__ == "__main__":
    raise SystemExit(main())
