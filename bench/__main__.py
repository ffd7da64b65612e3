"""`python -m bench [NAME ...] [--quick]`: see bench/README.md."""

from bench._runner import main

raise SystemExit(main())
