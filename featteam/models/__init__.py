"""The networks of steps 2 and 3 (torch): the encoder-evaluator-decoder and the student LLM.

Each model is a next-token source for :mod:`featteam.decoding`; the steps in
:mod:`featteam.steps` train, save, load and decode them over a run directory.
"""
