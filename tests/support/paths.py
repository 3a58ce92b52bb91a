"""Where the tests find the checkout and what the make targets build in it."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / ".yuqing" / "models"
ARTIFACTS = REPO / "test-artifacts"  # screenshots and logs a failing e2e test leaves behind
