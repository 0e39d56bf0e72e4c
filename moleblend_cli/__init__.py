"""`moleblend`: one command for data preparation, pretraining, fine-tuning, evaluation,
prediction and embeddings (see `moleblend --help`)."""
