"""`python -m goodfit.predict CKPT IMAGE [IMAGE …]` (the task lives in goodfit.tasks.predict)."""

import sys

from goodfit.tasks.predict import main

if __name__ == "__main__":
    sys.exit(main())
