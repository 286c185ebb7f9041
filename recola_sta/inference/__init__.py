"""Inference: the SavedModel export with its metadata (`export`), predict on
files, cameras and streams (`predict`), and the playable HTML report
(`report`, with `report_assets/`).
"""
