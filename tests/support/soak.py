"""The soak's size and pace (``tests/plugins/soak.py`` runs it, ``tests/e2e/test_soak.py`` checks it)."""

SOAK_S = 600.0
SOAK_POSTS = 3_000
SOAK_CHUNKS = 20
# Starting the worker, the drain after the last chunk, and a slow CI machine.
SOAK_GRACE_S = 300.0
