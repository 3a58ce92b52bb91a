"""``load_scorer``: read a model folder's card and hand the folder to its kind's loader.

Each loader imports its own kind's libraries, so a worker serving a plain Transformer never imports
scikit-learn (a stacked one does), and one serving the baseline never imports torch's model code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.scoring.cards import BASELINE_KIND, CARD_FILE, HF_CONFIG_FILE, TRANSFORMER_KIND, read_card
from workers.scoring.protocol import ModelNotFoundError, Scorer

if TYPE_CHECKING:
    from workers.scoring.options import RuntimeOptions


def _load_baseline(folder: Path, card: dict[str, Any], options: RuntimeOptions | None) -> Scorer:
    from workers.scoring.baseline import load_baseline

    return load_baseline(folder, card)


def _load_transformer(folder: Path, card: dict[str, Any], options: RuntimeOptions | None) -> Scorer:
    from workers.scoring.transformer import load_transformer

    return load_transformer(folder, card, options)


# Loaders by model-card kind; the runtime options (device, precision, threads) matter to the Transformer only.
LOADERS: dict[str, Callable[[Path, dict[str, Any], RuntimeOptions | None], Scorer]] = {
    BASELINE_KIND: _load_baseline,
    TRANSFORMER_KIND: _load_transformer,
}


def load_scorer(path: Path, *, options: RuntimeOptions | None = None) -> Scorer:
    """Load the model folder at ``path``; raises ModelNotFoundError if it is missing or corrupt.

    ``options`` (device, precision, threads) default to the process settings. A folder without a card
    but with a Hugging Face config.json loads as a Transformer: any such model folder is servable.
    """
    folder = Path(path)
    no_card = not (folder / CARD_FILE).is_file() and (folder / HF_CONFIG_FILE).is_file()
    card = {"kind": TRANSFORMER_KIND} if no_card else read_card(folder)
    kind = card.get("kind")
    loader = LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise ModelNotFoundError(
            f"model card {folder / CARD_FILE} has kind {kind!r}; this yuqing serves: {', '.join(LOADERS)}"
        )
    return loader(folder, card, options)
