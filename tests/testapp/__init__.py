"""A minimal host app for the hashtags tests: one image-post model, as an integrating platform has."""
