"""The channel-aware transformer (CAT) codec (PAPER.md §5)."""
