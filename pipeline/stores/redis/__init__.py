"""Redis: the live store (minute counts, hot words, evidence), the subject set and the alert state."""
