"""What each command does: train (one run, or the fine-tuning study), evaluate, predict, resume."""
