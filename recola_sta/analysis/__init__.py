"""Analysis: where the attention looks by facial region (`attention_analysis`),
the attention ablation (`attention_ablation`), and figures (`plots`).
"""
