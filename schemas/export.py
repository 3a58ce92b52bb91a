"""Write the JSON Schemas of the versioned records; a unit test checks the committed files match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.records import RECORDS

JSON_DIR = Path(__file__).parent / "json"


def json_schema(name: str) -> dict[str, Any]:
    schema = RECORDS[name].model_json_schema()
    schema["$id"] = f"urn:yuqing:schema:{name}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(name: str) -> str:
    return json.dumps(json_schema(name), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_json_schemas(out: Path = JSON_DIR) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in RECORDS:
        path = out / f"{name}.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths
