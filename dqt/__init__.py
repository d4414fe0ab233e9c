"""The ``dqt`` command line: one entry point, one subcommand per toolkit stage."""
