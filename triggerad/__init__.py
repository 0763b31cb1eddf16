"""trigger-ad shared core: event record, config, I/O, event generation and the CLI."""
