"""Assemble the social corpus (``training/data/social/``) from the posts as written and the second labelling pass.

Inputs, all in ``raw/``: the evaluation posts (``eval-*.jsonl``) and the training posts (``train-*.jsonl``),
each labelled by its writer, and ``eval-pass2.jsonl``, a blind second pass over the evaluation posts by another
annotator (ids are ``<file letter><line number>``). Outputs: ``dev.jsonl`` and ``test.jsonl`` (the evaluation
posts both passes agree on, split 50/50 stratified by label, seeded), ``train.jsonl`` and ``card.json``.

Near-duplicates are removed with the pipeline's own MinHash index (``NearDuplicateIndex``, the noise filter's):
the evaluation posts are indexed first, so a training post close to one of them is the one dropped, then the
training posts; the texts of the package corpora are indexed before both, so no social post copies a corpus text.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from pipeline.domain.noise.dedup import NearDuplicateIndex, dedup_key
from training.corpora import FEED_CORPORA, LABELS, SOCIAL_DIR, load_corpus

SEED = 13
DEV_SHARE = 0.5
FIELDS = ("id", "text", "label", "platform", "topic", "phenomena")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = (json.dumps({k: row[k] for k in FIELDS}, ensure_ascii=False) for row in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _posts(raw: Path, kind: str) -> list[dict[str, Any]]:
    posts = []
    for path in sorted(raw.glob(f"{kind}-[a-z0-9].jsonl")):
        letter = path.stem.split("-")[1]
        for n, row in enumerate(_read(path)):
            posts.append({**row, "id": f"{kind}-{letter}{n:04d}"})
    return posts


def _exact_key(text: str) -> str:
    return dedup_key(text) or text.strip()  # emoji-only posts have no letters


def _split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(SEED)
    dev, test = [], []
    for label in LABELS:
        group = sorted((r for r in rows if r["label"] == label), key=lambda r: r["id"])
        order = rng.permutation(len(group))
        cut = round(DEV_SHARE * len(group))
        dev += [group[i] for i in order[:cut]]
        test += [group[i] for i in order[cut:]]
    return sorted(dev, key=lambda r: r["id"]), sorted(test, key=lambda r: r["id"])


def _agreement(posts: list[dict[str, Any]], second: dict[str, dict[str, Any]]) -> dict[str, Any]:
    both = [p for p in posts if p["id"] in second]
    first_labels = [p["label"] for p in both]
    second_labels = [second[p["id"]]["label"] for p in both]
    agreed = sum(a == b for a, b in zip(first_labels, second_labels, strict=True))
    confusions = Counter(f"{a}->{b}" for a, b in zip(first_labels, second_labels, strict=True) if a != b)
    return {
        "labelled_twice": len(both),
        "agreed": agreed,
        "raw_agreement": round(agreed / max(len(both), 1), 4),
        "cohen_kappa": round(float(cohen_kappa_score(first_labels, second_labels)), 4),
        "unsure_in_second_pass": sum(1 for p in both if second[p["id"]].get("unsure")),
        "disagreements_writer_to_second": dict(confusions.most_common()),
    }


def build(folder: Path = SOCIAL_DIR) -> dict[str, Any]:
    """Write dev, test and train from ``folder/raw``; returns the card (also written to ``card.json``)."""
    raw = folder / "raw"
    evaluation, training = _posts(raw, "eval"), _posts(raw, "train")
    second = {row["id"]: row for row in _read(raw / "eval-pass2.jsonl")}
    index = NearDuplicateIndex(window_s=1e12, max_entries=10**7, max_variants=10**6)
    owner: dict[str, str] = {}  # exact keys too: the index leaves texts under ten letters out
    for name in FEED_CORPORA:
        for n, example in enumerate(load_corpus(name)):
            index.assign(f"corpus-{name}-{n}", example.text, 0.0)
            owner.setdefault(_exact_key(example.text), "corpus")
    dropped: Counter[str] = Counter()
    kept: dict[str, list[dict[str, Any]]] = {"eval": [], "train": []}
    for kind, posts in (("eval", evaluation), ("train", training)):
        for post in posts:
            key, match = _exact_key(post["text"]), index.assign(post["id"], post["text"], 0.0)
            if key in owner:
                source = owner[key]
            elif match.is_duplicate:
                source = match.cluster_id.split("-")[0]
            else:
                owner[key] = kind
                kept[kind].append(post)
                continue
            dropped[f"{kind}: near-duplicate of {'a package corpus' if source == 'corpus' else source}"] += 1
    agreement = _agreement(kept["eval"], second)
    agreed = [
        p
        for p in kept["eval"]
        if p["id"] in second and second[p["id"]]["label"] == p["label"] and not second[p["id"]].get("unsure")
    ]
    dev, test = _split(agreed)
    for name, rows in (("dev", dev), ("test", test), ("train", kept["train"])):
        _write(folder / f"{name}.jsonl", rows)
    card = {
        "written": {"eval": len(evaluation), "train": len(training)},
        "near_duplicates_dropped": dict(dropped),
        "second_pass": agreement,
        "kept_after_agreement": len(agreed),
        "splits": {name: _describe(rows) for name, rows in (("dev", dev), ("test", test), ("train", kept["train"]))},
        "split_seed": SEED,
    }
    (folder / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return card


def _describe(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "posts": len(rows),
        "labels": dict(sorted(Counter(r["label"] for r in rows).items())),
        "platforms": dict(sorted(Counter(r["platform"] for r in rows).items())),
        "phenomena": dict(Counter(tag for r in rows for tag in r["phenomena"]).most_common()),
        "mean_chars": round(sum(len(r["text"]) for r in rows) / max(len(rows), 1), 1),
    }
