"""Data readers and featurization: from molecules to records, and records on disk.
Nothing here knows about models."""
