"""Evaluation: the AVEC post-processing chain (`postprocess`), the evaluation
of a run on dev (`evaluate`), and the paper's Tables 1-3 (`tables`).
"""
