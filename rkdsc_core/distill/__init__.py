"""Knowledge-distillation losses and the two robust-KD stages (PAPER.md §4)."""
