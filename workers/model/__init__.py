"""Sentiment model training and evaluation: labelled corpora and the TF-IDF baseline."""
