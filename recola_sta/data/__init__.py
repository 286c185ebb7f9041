"""Corpora: the RECOLA (AVEC 2016 layout), AV+EC 2017, Aff-Wild2 and CSV
readers (`corpora`, which dispatches to `affwild2` and builds on `labels` and
`recordings`), and the synthetic RECOLA-layout corpus (`synthetic`) animated
from a real face photo (`face_animation`, `synthetic_scenes`).

Imports no TensorFlow: corpus generation runs in worker processes.
"""
