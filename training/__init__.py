"""Training pipeline: Flickr8k-layout datasets, feature cache, decoder training, evaluation."""
