"""``yuqing bench …``: measured speeds, each against a reference measured in the same run."""
