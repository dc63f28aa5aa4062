"""The `baycat` command line: the only package that reads flags and the environment.

    main.py      the typer app, the global options, the table of commands, main()
    sync.py      sync, restore                      ┐
    manifest.py  manifest create|update|show|...    ├ the commands
    inspect.py   verify, repair, history, gc        │
    retention.py forget, prune                      ┘
    options.py   shared options; flags and environment -> S3Options, prices, filters
    run.py       logging, the run loop and signals, the one error exit (fatal_errors)
    output.py    every printer: text, --json, the fatal --json object
    display.py   the live display (rich), fed from Progress counters
    logs.py      logging set-up, redacted

Each command checks its arguments inside `fatal_errors`, runs the engine through
`run_engine` and hands the result to a printer; modules above import modules below.
"""

from baycat.cli.main import app, main

__all__ = ["app", "main"]
