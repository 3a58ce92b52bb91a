"""What an analyst monitors: ``Subject`` definitions, a versioned ``SubjectSet``, and its file.

A subject matches a post when the post contains at least one term of EVERY ``include`` group
(an AND of ORs: ``[["云帆", "Yunfan"], ["手机", "phone"]]`` is (云帆 or Yunfan) and (手机 or phone)),
none of the ``exclude`` terms, comes from one of ``platforms`` (``None``: any), or, when the subject
has a ``description`` and embeddings are at hand, when the post's embedding is at least
``similarity_threshold`` (cosine) close to the description's. Exclusions veto both ways.

Terms are compared in a normal form (NFKC, casefolded, single spaces), so ``iPhone`` and ``ＩＰＨＯＮＥ``
are one term. The file is YAML (``.yaml``/``.yml``, PyYAML's safe loader) or JSON (``.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.domain.subjects import SubjectError
from pipeline.domain.text.forms import fold, folded
from schemas.records import UtcDatetime

MAX_TERM_CHARS = 64
MAX_TERMS_PER_GROUP = 500
MAX_GROUPS = 16
MAX_NAME_CHARS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")


def normalise_term(term: str) -> str:
    """The form terms and texts are compared in: NFKC, casefolded, whitespace collapsed."""
    return _SPACE.sub(" ", fold(term)).strip()


def normalise_text(text: str) -> str:
    """``normalise_term`` of a post's text, whose fold its dedup key has usually just remembered."""
    return _SPACE.sub(" ", folded(text)).strip()


def _clean_term(term: str, where: str) -> str:
    term = _SPACE.sub(" ", term).strip()
    if not term:
        raise ValueError(f"{where}: a term is empty")
    if _CONTROL.search(term):
        raise ValueError(f"{where}: term {term!r} contains control characters")
    if len(term) > MAX_TERM_CHARS:
        raise ValueError(f"{where}: term {term[:20]!r}... is longer than {MAX_TERM_CHARS} characters")
    if not normalise_term(term):
        raise ValueError(f"{where}: term {term!r} is empty once normalised")
    return term


def _no_duplicates(terms: tuple[str, ...], where: str) -> None:
    seen: dict[str, str] = {}
    for term in terms:
        key = normalise_term(term)
        if key in seen:
            raise ValueError(f"{where}: {term!r} and {seen[key]!r} are the same term")
        seen[key] = term


class Subject(BaseModel):
    """One monitored subject; see the module docstring for how it matches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Unique name; what counts, alerts and the dashboard show.")
    include: tuple[tuple[str, ...], ...] = Field(description="AND of OR-groups of terms.")
    exclude: tuple[str, ...] = Field((), description="A post with any of these terms is not about the subject.")
    platforms: tuple[str, ...] | None = Field(None, description="Only posts from these platforms; null: all.")
    description: str | None = Field(None, description="Text whose embedding also matches semantically.")
    similarity_threshold: float = Field(0.83, gt=0, le=1, description="Cosine similarity for a semantic match.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not name or name != name.strip():
            raise ValueError("a subject name must be non-empty, without leading or trailing spaces")
        if len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
            raise ValueError(f"a subject name must be at most {MAX_NAME_CHARS} characters, without control characters")
        if name.startswith("_") or name == "*":
            raise ValueError(f"subject name {name!r} is reserved (names starting with _ and * are yuqing's own)")
        return name

    @field_validator("include")
    @classmethod
    def _include(cls, groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if not groups:
            raise ValueError("include needs at least one group of terms (an empty include would match every post)")
        if len(groups) > MAX_GROUPS:
            raise ValueError(f"include has {len(groups)} groups; at most {MAX_GROUPS}")
        cleaned: list[tuple[str, ...]] = []
        for index, group in enumerate(groups):
            where = f"include group {index}"
            if not group:
                raise ValueError(f"{where} is empty: a group needs at least one term")
            if len(group) > MAX_TERMS_PER_GROUP:
                raise ValueError(f"{where} has {len(group)} terms; at most {MAX_TERMS_PER_GROUP}")
            terms = tuple(_clean_term(term, where) for term in group)
            _no_duplicates(terms, where)
            cleaned.append(terms)
        return tuple(cleaned)

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(_clean_term(term, "exclude") for term in terms)
        _no_duplicates(cleaned, "exclude")
        return cleaned

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, platforms: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if platforms is None:
            return None
        cleaned = tuple(dict.fromkeys(p.strip().lower() for p in platforms))
        if not cleaned or any(not p or _CONTROL.search(p) or " " in p for p in cleaned):
            raise ValueError("platforms must be non-empty platform ids (use null for every platform)")
        return cleaned

    @field_validator("description")
    @classmethod
    def _description(cls, description: str | None) -> str | None:
        if description is not None and not description.strip():
            raise ValueError("description must not be blank (leave it out instead)")
        return description.strip() if description is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> Subject:
        excluded = {normalise_term(term): term for term in self.exclude}
        for index, group in enumerate(self.include):
            keys = [normalise_term(term) for term in group]
            for key, term in zip(keys, group, strict=True):
                if key in excluded:
                    raise ValueError(f"term {term!r} is both included (group {index}) and excluded")
            for key, term in excluded.items():
                if all(key in included for included in keys):
                    raise ValueError(
                        f"exclude term {term!r} is inside every term of include group {index}, "
                        "so the subject could never match by its terms"
                    )
        return self

    def terms(self) -> frozenset[str]:
        """Every include term, normalised (hot words of the subject leave these out)."""
        return frozenset(normalise_term(term) for group in self.include for term in group)


def _now() -> datetime:
    return datetime.now(UTC)


class SubjectSet(BaseModel):
    """All monitored subjects, versioned; ``content_hash`` changes only when a definition does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(0, ge=0, description="Bumped by whoever edits the set.")
    updated_at: UtcDatetime = Field(default_factory=_now)
    subjects: tuple[Subject, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> SubjectSet:
        seen: dict[str, str] = {}
        for subject in self.subjects:
            key = subject.name.casefold()
            if key in seen:
                raise ValueError(f"subject name {subject.name!r} is used twice (names are compared ignoring case)")
            seen[key] = subject.name
        return self

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the definitions, in name order; version and updated_at left out on purpose,
        so re-saving the same definitions does not make workers rebuild their matchers."""
        body = [s.model_dump(mode="json") for s in sorted(self.subjects, key=lambda s: s.name)]
        canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(subject.name for subject in self.subjects)

    def get(self, name: str) -> Subject | None:
        return next((subject for subject in self.subjects if subject.name == name), None)

    def all_terms(self) -> list[str]:
        """Every include term as written, for the segmenter's user dictionary."""
        return list(dict.fromkeys(term for s in self.subjects for group in s.include for term in group))

    def revised(self, subjects: list[Subject] | tuple[Subject, ...]) -> SubjectSet:
        """A new set with these subjects, the next version and the current time."""
        return SubjectSet(version=self.version + 1, updated_at=_now(), subjects=tuple(subjects))


def _describe(error: ValidationError, data: object) -> str:
    """One line per problem, naming the subject by index and name."""
    subjects = data.get("subjects") if isinstance(data, dict) else None
    lines = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ".".join(str(part) for part in loc) or "file"
        if len(loc) >= 2 and loc[0] == "subjects" and isinstance(loc[1], int) and isinstance(subjects, list):
            raw = subjects[loc[1]] if loc[1] < len(subjects) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"subjects[{loc[1]}]" + (f" ({name!r})" if name else "") + "".join(f".{p}" for p in loc[2:])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_subjects(data: object, source: str = "subjects") -> SubjectSet:
    """A SubjectSet from parsed YAML/JSON; a SubjectError names every problem."""
    if not isinstance(data, dict):
        raise SubjectError(f"{source}: expected a mapping with version, updated_at and subjects")
    try:
        return SubjectSet.model_validate(data)
    except ValidationError as exc:
        raise SubjectError(f"{source}: {_describe(exc, data)}") from None


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    raise SubjectError(f"{path}: subjects file must end in .yaml, .yml or .json")


def load_subjects(path: str | Path) -> SubjectSet:
    path = Path(path)
    kind = _format(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubjectError(f"{path}: cannot read subjects file: {exc}") from None
    try:
        data: Any = yaml.safe_load(text) if kind == "yaml" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SubjectError(f"{path}: not valid {kind.upper()}: {exc}") from None
    return parse_subjects(data, str(path))


def save_subjects(subjects: SubjectSet, path: str | Path) -> None:
    """Write atomically (a reader never sees half a file), in the format the suffix names."""
    path = Path(path)
    kind = _format(path)
    data = subjects.model_dump(mode="json", exclude_none=True)
    if kind == "yaml":
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=None)
    else:
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
