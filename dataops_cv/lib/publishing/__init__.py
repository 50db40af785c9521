"""Publishing runs: one merge into main when a run succeeded (publish), a record on the kept
branch when it did not, and retention of the branches unpublished runs leave (prune)."""
