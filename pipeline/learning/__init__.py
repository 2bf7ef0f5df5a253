"""Fine-tuning: base model, chat template, data preparation, training, generation, benchmark.

Import the submodules (`pipeline.learning.train`, ...): this package imports no heavy
library (torch, transformers) at import time.
"""
