"""Subject definitions: validation with clear errors, the versioned set, its file and content hash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.model import (
    Subject,
    SubjectSet,
    load_subjects,
    normalise_term,
    parse_subjects,
    save_subjects,
)

WHEN = datetime(2025, 3, 1, tzinfo=UTC)


def subject(**fields: Any) -> dict[str, Any]:
    return {"name": "云帆手机", "include": [["云帆", "Yunfan"], ["手机", "phone"]], **fields}


def one(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "updated_at": "2025-03-01T00:00:00Z", "subjects": [subject(**fields)]}


def error_of(data: object) -> str:
    with pytest.raises(SubjectError) as caught:
        parse_subjects(data, "subjects.yaml")
    return str(caught.value)


def test_a_valid_subject_is_tidied() -> None:
    parsed = parse_subjects(one(exclude=[" 云帆路 "], platforms=["Weibo", "weibo", "x"], description=" 云帆手机 "))
    item = parsed.subjects[0]
    assert item.include == (("云帆", "Yunfan"), ("手机", "phone"))
    assert item.exclude == ("云帆路",)
    assert item.platforms == ("weibo", "x")
    assert item.description == "云帆手机" and item.similarity_threshold == 0.83
    assert item.terms() == {"云帆", "yunfan", "手机", "phone"}
    assert parsed.all_terms() == ["云帆", "Yunfan", "手机", "phone"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"include": []}, "include needs at least one group"),
        ({"include": [["云帆"], []]}, "include group 1 is empty"),
        ({"include": [["云帆", "  "]]}, "include group 0: a term is empty"),
        ({"include": [["iPhone", "IPHONE"]]}, "are the same term"),
        ({"include": [["ｉｐｈｏｎｅ", "iphone"]]}, "are the same term"),
        ({"exclude": ["Yunfan"]}, "'Yunfan' is both included (group 0) and excluded"),
        ({"exclude": ["yunfan"]}, "both included"),
        ({"include": [["华为", "华为手机"]], "exclude": ["华"]}, "inside every term of include group 0"),
        ({"platforms": []}, "use null for every platform"),
        ({"name": ""}, "name must be non-empty"),
        ({"name": " 云帆"}, "without leading or trailing spaces"),
        ({"name": "_all"}, "is reserved"),
        ({"name": "*"}, "is reserved"),
        ({"name": "a\tb"}, "control characters"),
        ({"description": "   "}, "must not be blank"),
        ({"similarity_threshold": 1.5}, "similarity_threshold"),
        ({"include": [["x" * 65]]}, "longer than 64"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_definitions_say_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    text = error_of(one(**fields))
    assert text.startswith("subjects.yaml: subjects[0]")
    assert message in text


def test_an_exclude_inside_only_some_terms_is_fine() -> None:
    parse_subjects(one(include=[["华为", "荣耀"]], exclude=["华"]))


def test_duplicate_names_are_rejected_ignoring_case() -> None:
    data = {"subjects": [subject(name="Yunfan"), subject(name="yunfan")]}
    assert "used twice" in error_of(data)
    assert "expected a mapping" in error_of([subject()])


def test_content_hash_follows_definitions_not_version_or_time() -> None:
    first = parse_subjects(one())
    resaved = parse_subjects({**one(), "version": 7, "updated_at": "2030-01-01T00:00:00Z"})
    assert first.content_hash == resaved.content_hash
    changed = parse_subjects(one(exclude=["云帆路"]))
    assert changed.content_hash != first.content_hash
    two = [Subject(name="a", include=(("x",),)), Subject(name="b", include=(("y",),))]
    assert SubjectSet(subjects=tuple(two)).content_hash == SubjectSet(subjects=tuple(reversed(two))).content_hash


def test_revised_bumps_the_version() -> None:
    base = SubjectSet(version=3, updated_at=WHEN)
    revised = base.revised([Subject(name="春运", include=(("春运",),))])
    assert revised.version == 4 and revised.updated_at > WHEN and revised.names == ("春运",)
    assert revised.get("春运") is not None and revised.get("x") is None


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_files_round_trip(tmp_path: Path, suffix: str) -> None:
    original = parse_subjects(one(exclude=["云帆路"], platforms=["weibo"], description="云帆的手机"))
    path = tmp_path / "conf" / f"subjects{suffix}"
    save_subjects(original, path)
    assert load_subjects(path) == original
    assert "云帆" in path.read_text(encoding="utf-8")  # written as readable UTF-8, not escapes
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_a_hand_written_yaml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "subjects.yaml"
    path.write_text(
        "version: 2\nupdated_at: 2025-03-01T08:00:00+08:00\nsubjects:\n"
        "  - name: 极光汽车\n    include: [[极光汽车, Aurora Motors]]\n    exclude: [极光之夜]\n",
        encoding="utf-8",
    )
    loaded = load_subjects(path)
    assert loaded.version == 2 and loaded.updated_at == datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    assert loaded.subjects[0].include == (("极光汽车", "Aurora Motors"),)


def test_unreadable_files_raise_subject_errors(tmp_path: Path) -> None:
    with pytest.raises(SubjectError, match="cannot read"):
        load_subjects(tmp_path / "missing.yaml")
    with pytest.raises(SubjectError, match=r"must end in \.yaml"):
        load_subjects(tmp_path / "subjects.toml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("subjects: [unclosed", encoding="utf-8")
    with pytest.raises(SubjectError, match="not valid YAML"):
        load_subjects(broken)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{", encoding="utf-8")
    with pytest.raises(SubjectError, match="not valid JSON"):
        load_subjects(bad_json)
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"subjects": [{"name": "a", "include": []}]}', encoding="utf-8")
    with pytest.raises(SubjectError, match=r"invalid\.json: subjects\[0\] \('a'\)\.include"):
        load_subjects(invalid)


def test_normal_form() -> None:
    assert normalise_term("  ＩＰｈｏｎｅ   15 ") == "iphone 15"
    assert normalise_term("华为") == "华为"
