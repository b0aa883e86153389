"""What every layer may use: errors, atomic writes, checkpoint IO, processes, timing, and
eval mode for a moment (`modes`)."""
