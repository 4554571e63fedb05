"""The CLI's exit codes, a leaf every subcommand imports (so none imports the `cli` package).

0 ok / finished / stopped, 1 the run failed, 2 the input was bad, 3 the run is suspended.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SUSPENDED = 3
