"""The networks (Keras 3, `keras.ops` only, so any backend runs them): the
custom layers (`layers`), the paper's three networks and their ablations
(`networks`), and the CCC as Keras metrics and losses (`losses`).
"""
