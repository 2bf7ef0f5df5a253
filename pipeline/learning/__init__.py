"""Models with torch and transformers: the base model, fine-tuning (SFT, DPO), generation
engines, the collator that turns packed rows into tensors, and the MLflow pyfunc model.

Import the submodules (`pipeline.learning.train`, ...): this package imports no heavy
library (torch, transformers) at import time.
"""
