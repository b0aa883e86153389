"""`python -m bench`: see bench/compare.py."""

from bench.compare import main

main()
