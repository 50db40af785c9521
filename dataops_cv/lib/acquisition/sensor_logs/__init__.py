"""The generic sensor-log format: ``format`` (constants, schema, the full format documentation),
``writer``, ``reader`` and ``normalise`` (raw rows to the normalised table)."""
