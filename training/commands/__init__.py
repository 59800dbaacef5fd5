"""One module per `python -m training` subcommand (see training.cli)."""
