"""How a run executes: the per-class scheduler's rounds."""
