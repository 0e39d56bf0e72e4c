"""What users run end to end: fine-tuning from a CSV to a report (`moleblend finetune`)."""
