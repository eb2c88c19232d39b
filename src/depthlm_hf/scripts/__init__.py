"""Command-line scripts: each module has `make_parser()` and `main(argv=None)`; `depthlm <name>` runs them."""
