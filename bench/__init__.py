"""reelm's benchmarks: `python -m bench` runs them all, `python -m bench NAME` one of them.

Every module of this package whose name does not start with `_` and that defines `TITLE` and
`run(ctx) -> Outcome` is a benchmark. See bench/README.md.
"""
