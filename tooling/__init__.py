"""Tooling users run and the pipeline never imports: the CLI, the local stack, the blue-green switch."""
