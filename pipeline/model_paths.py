"""Where the models live. Dependency-free, so the training code can run on a bare GPU box."""

from pathlib import Path

# The default scorer is the distilled Transformer student committed with the code (under 40 MB).
# The TF-IDF baseline, rebuilt from packages (make model), is the reference of evals and benches.
STUDENT_MODEL = Path(__file__).resolve().parents[1] / "models" / "student"
BASELINE_MODEL = Path(".yuqing/models/baseline")
TEACHER_MODEL = Path(".yuqing/models/teacher")  # trained here by `yuqing model train`, not committed
