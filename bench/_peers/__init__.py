"""Worker processes for the benchmarks: one module per system, each reading its Redis URL from the environment."""
