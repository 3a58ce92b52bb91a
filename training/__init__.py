"""Offline model work, behind the ``train`` extra: corpora, the TF-IDF baseline, the e5 base build,
teacher training, distillation, evaluation, vocabulary trimming and model cards.

The streaming worker never imports this package; it loads what these commands write through
``workers.scoring``.
"""
