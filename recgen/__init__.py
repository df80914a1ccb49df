"""recgen: one LLM that generates a candidate slate and ranks it, trained with F-GRPO."""

__version__ = "0.1.0"
