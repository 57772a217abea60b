"""Diagnostics: tools that show what the notes teach about recurrent networks (step tables,
gradient flow through time, long-memory tasks). Each tool is one module; ``rnnkit.cli.TOOLS``
registers the ones with a command."""
