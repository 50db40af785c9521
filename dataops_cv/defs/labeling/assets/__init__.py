"""Labeling assets, one module each: Label Studio tasks, label snapshots, the canonical labeled
annotations, pre-labels and the audit queue."""
