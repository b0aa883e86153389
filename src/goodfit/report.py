"""`python -m goodfit.report DIR [DIR …]` (the report lives in goodfit.records.report)."""

from goodfit.records.report import main

if __name__ == "__main__":
    raise SystemExit(main())
