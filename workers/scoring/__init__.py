"""Scoring: the ``Scorer`` protocol the worker calls, and loading a model folder behind it.

- ``protocol``: ``Scorer`` with its optional abilities as typed sub-protocols, ``Prediction`` and
  ``Unscored`` (a text the model could not score, with the reason);
- ``cards``: the model card (``model.json``) every model folder carries;
- ``loading``: ``load_scorer`` picks a loader by the card's kind, importing only what that kind needs;
- ``baseline``: the TF-IDF baseline's scorer (needs scikit-learn, the ``train`` extra);
- ``transformer``, ``hf_folder``, ``options``: the Transformer scorer, the Hugging Face folder contract
  and how it runs (device, precision, threads).
"""
