"""mlcore: the CNN-LSTM captioner and caption-to-hashtag extraction (imports nothing from Django)."""
