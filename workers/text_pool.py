"""Clean, segment and sign in worker processes, so that several cores feed one model (a GPU).

Text analysis holds the GIL for a good part of a millisecond a post, so threads cannot share it out;
processes can. Each process keeps its own segmenter, built once at start, the noise filter's signer
(MinHash), and a stacked model's TF-IDF half, loaded from the model folder, so that only the filter's
state update and the Transformer are left to the worker. The subject terms
travel with every chunk and a process adds those it lacks, so a new subject is segmented whole from
the next batch on, whichever process takes it. Processes are spawned, not forked: the worker has
threads (faust, the model) that a fork would copy in whatever state they were.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline.domain.noise.signature import Signer
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from workers.scoring.protocol import Scorer
from workers.scoring.stacking import load_companion
from workers.stages import TextAnalysis, analyse_batch

_segmenter: Segmenter | None = None  # this process's, when it is a pool process
_signer: Signer | None = None
_companion: Scorer | None = None


def _start_process(max_chars: int, signer: Signer, companion_folder: Path | None) -> None:
    global _segmenter, _signer, _companion
    _segmenter, _signer = Segmenter(max_chars), signer
    _companion = load_companion(companion_folder) if companion_folder is not None else None
    _segmenter.warm_up()


def _analyse_chunk(
    texts: list[str], terms: tuple[str, ...], max_terms: int
) -> tuple[list[TextAnalysis], dict[str, tuple[float, int]], float]:
    """The chunk's analyses, the time per stage, and the CPU seconds this process spent on the chunk."""
    assert _segmenter is not None and _signer is not None, "a pool process starts with _start_process"
    started = time.process_time()
    _segmenter.add_terms(terms)
    clock = StageClock("text")  # never published here: its totals go back to the worker's clock
    analyses = analyse_batch(texts, _segmenter, _signer, max_terms, clock, _companion)
    return analyses, clock.totals(), time.process_time() - started


class TextPool:
    """``processes`` processes that analyse the texts of a batch in as many chunks; ``signer``: the noise
    filter's; ``companion_folder``: a stacked model's, whose TF-IDF half they score."""

    def __init__(
        self, processes: int, max_chars: int, max_terms: int, signer: Signer, companion_folder: Path | None = None
    ) -> None:
        self.processes, self._max_terms = processes, max_terms
        self.cpu_s = 0.0  # CPU seconds the processes spent on the chunks so far (benches read it)
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_process,
            initargs=(max_chars, signer, companion_folder),
        )

    def warm_up(self) -> None:
        """Start every process and build its segmenter before the first batch needs them."""
        for future in [self._executor.submit(_analyse_chunk, ["预热"], (), 1) for _ in range(self.processes)]:
            future.result()

    def analyse(
        self, texts: Sequence[str], terms: tuple[str, ...], clock: StageClock | None = None
    ) -> list[TextAnalysis]:
        """The analyses of ``texts``, in order; blocks. ``clock`` gets the processes' time per stage."""
        size = -(-len(texts) // self.processes) or 1
        chunks = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        futures = [self._executor.submit(_analyse_chunk, chunk, terms, self._max_terms) for chunk in chunks]
        analyses: list[TextAnalysis] = []
        for future in futures:
            found, totals, cpu_s = future.result()
            analyses += found
            self.cpu_s += cpu_s
            if clock is not None:
                for stage, (seconds, records) in totals.items():
                    clock.add(stage, seconds, records)
        return analyses

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def analyse_texts(
    texts: Sequence[str],
    pool: TextPool | None,
    terms: tuple[str, ...],
    segmenter: Segmenter,
    signer: Signer,
    max_terms: int,
    clock: StageClock | None = None,
    companion: Scorer | None = None,
) -> list[TextAnalysis]:
    """The analyses of a batch's texts: in ``pool`` when there is one (``terms``: every subject term so
    far; the pool's processes have their own companion), else here with ``segmenter`` and ``companion``."""
    if pool is not None:
        return pool.analyse(texts, terms, clock)
    return analyse_batch(texts, segmenter, signer, max_terms, clock, companion)
