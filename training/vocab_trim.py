"""Trim the 250k-piece multilingual vocabulary to the pieces a model needs, keeping ids and rows in line.

Kept: the special tokens, the word-boundary piece "▁", every single-character CJK piece (bare and with
"▁"), so any Chinese text still segments without <unk>, and the pieces the given texts use (the train and
validation texts: test texts are not looked at), optionally only the most frequent ones up to ``max_pieces``.
Kept pieces keep their relative order, so the specials keep ids 0-3.

Why segmentation is unchanged for the texts the vocabulary was built from: the Unigram tokenizer picks the
highest-scoring segmentation among the pieces it has (Viterbi). If every piece of a text's original best
segmentation is kept, that segmentation is still available and nothing better was added, so it is still
chosen. A text that needs a dropped piece is segmented into smaller kept pieces instead.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
WORD_BOUNDARY = "\u2581"


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FFFF
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


@dataclass(frozen=True)
class Trimmed:
    spec: dict[str, Any]  # the new tokenizer.json
    keep: list[int]  # old id of each new id, ascending
    report: dict[str, Any]


def count_pieces(tokenizer: Any, texts: Iterable[str], batch: int = 2_000) -> Counter[int]:
    """How often each token id occurs in ``texts`` (untruncated, so long texts keep their tails' pieces)."""
    counts: Counter[int] = Counter()
    chunk: list[str] = []
    for text in [*texts, None]:
        if text is not None:
            chunk.append(text)
        if chunk and (text is None or len(chunk) == batch):
            for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
                counts.update(ids)
            chunk = []
    return counts


def choose_pieces(pieces: Sequence[str], counts: Counter[int], max_pieces: int | None = None) -> list[int]:
    """Old ids to keep: specials, "▁", single CJK characters, then used pieces by frequency."""
    forced = {i for i, piece in enumerate(pieces) if piece in SPECIAL_PIECES or piece == WORD_BOUNDARY}
    forced |= {i for i, p in enumerate(pieces) if len(p.lstrip(WORD_BOUNDARY)) == 1 and is_cjk(p[-1])}
    used = [i for i, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if i not in forced]
    room = len(used) if max_pieces is None else max(0, max_pieces - len(forced))
    return sorted(forced | set(used[:room]))


def trim_spec(spec: dict[str, Any], keep: Sequence[int]) -> dict[str, Any]:
    """tokenizer.json restricted to ``keep`` (old ids, ascending), with every id reference renumbered."""
    if spec["model"]["type"] != "Unigram":
        raise ValueError(f"only Unigram tokenizers can be trimmed, not {spec['model']['type']}")
    new_id = {old: new for new, old in enumerate(keep)}
    out = copy.deepcopy(spec)
    vocab = spec["model"]["vocab"]
    out["model"]["vocab"] = [vocab[old] for old in keep]
    out["model"]["unk_id"] = new_id[spec["model"]["unk_id"]]
    for token in out["added_tokens"]:
        token["id"] = new_id[token["id"]]
    post = out.get("post_processor") or {}
    for special in post.get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    return out


def trim(tokenizer: Any, tokenizer_json: Path, texts: Iterable[str], max_pieces: int | None = None) -> Trimmed:
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    pieces = [piece for piece, _ in spec["model"]["vocab"]]
    counts = count_pieces(tokenizer, texts)
    keep = choose_pieces(pieces, counts, max_pieces)
    kept = set(keep)
    covered = sum(n for i, n in counts.items() if i in kept)
    report = {
        "pieces_before": len(pieces),
        "pieces_after": len(keep),
        "pieces_used_by_texts": len(counts),
        "max_pieces": max_pieces,
        "token_coverage": round(covered / max(1, sum(counts.values())), 5),
    }
    return Trimmed(trim_spec(spec, keep), keep, report)


def trim_embeddings(model: Any, keep: Sequence[int]) -> None:
    """Keep only the rows of ``keep`` (new id i gets old row keep[i]) and update the config."""
    rows = model.get_input_embeddings().weight.detach()[torch.tensor(list(keep), dtype=torch.long)].clone()
    _replace_embeddings(model, rows, {old: new for new, old in enumerate(keep)})


def _replace_embeddings(model: Any, rows: torch.Tensor, new_id: dict[int, int]) -> None:
    """Give ``model`` the embedding ``rows``; ``new_id`` maps its old token ids to their new ones, for the
    padding row and the config's special ids."""
    old = model.get_input_embeddings()
    pad = new_id.get(old.padding_idx) if old.padding_idx is not None else None
    new = torch.nn.Embedding(len(rows), rows.shape[1], padding_idx=pad)
    new.weight = torch.nn.Parameter(rows, requires_grad=old.weight.requires_grad)
    model.set_input_embeddings(new)
    model.config.vocab_size = len(rows)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(model.config, name, None)
        if value is not None:
            setattr(model.config, name, new_id[value])


def check_alignment(old_tok: Any, new_tok: Any, keep: Sequence[int], texts: Sequence[str]) -> dict[str, Any]:
    """Tokenise with both tokenizers: the new ids mapped through ``keep`` must give the old ids, piece for piece."""
    old_ids = old_tok(list(texts))["input_ids"]
    new_ids = new_tok(list(texts))["input_ids"]
    same = sum(1 for o, n in zip(old_ids, new_ids, strict=True) if [keep[i] for i in n] == list(o))
    pieces_match = old_tok.convert_ids_to_tokens(list(keep)) == new_tok.convert_ids_to_tokens(list(range(len(keep))))
    return {"texts": len(texts), "identical_segmentation": same, "pieces_match_rows": pieces_match}


def extend(
    model: Any,
    spec: dict[str, Any],
    full_spec: dict[str, Any],
    full_rows: torch.Tensor,
    full_tokenizer: Any,
    texts: Iterable[str],
) -> dict[str, Any]:
    """Grow a trimmed model's vocabulary back towards the full one: every piece the full tokenizer uses on
    ``texts`` joins the pieces the model has. A piece it had keeps its (trained) row; a new one gets the full
    model's pretrained row. Returns the new tokenizer.json; the model's embeddings are replaced in place.

    Why: a student trimmed on one set of corpora maps what those never used (emoji, new slang) to <unk>;
    a later round on new data can only learn them once they have rows of their own."""
    full_id = {piece: i for i, (piece, _) in enumerate(full_spec["model"]["vocab"])}
    had = [full_id[piece] for piece, _ in spec["model"]["vocab"]]
    needed = set(count_pieces(full_tokenizer, texts))
    keep = sorted(set(had) | needed)
    source = model.get_input_embeddings().weight.detach()
    position = {full: i for i, full in enumerate(had)}
    rows = torch.stack([source[position[i]] if i in position else full_rows[i].to(source.dtype) for i in keep])
    new_id = {full: n for n, full in enumerate(keep)}
    _replace_embeddings(model, rows, {i: new_id[full] for i, full in enumerate(had)})
    return trim_spec(full_spec, keep)
