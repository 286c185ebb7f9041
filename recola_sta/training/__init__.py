"""Training: the tf.data pipeline of 16-frame clips (`pipeline`), the run
folder's state and resume (`run_state`), distribution over devices and hosts
(`distributed`), and the training CLI (`train`) with its settings (`config`),
inputs (`inputs`), run-folder guards (`run_folder`), callbacks
(`checkpoints`) and results (`results`).
"""
