"""Pure domain logic, no I/O: text, noise, subjects, alerts, hot words and what a valid post is."""
