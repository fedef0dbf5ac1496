"""Per-modality models (experts) and where their weights come from."""
