"""CLI subcommand groups. Each module exposes ``register(subparsers)``."""
