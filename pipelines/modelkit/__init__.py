"""The shared model kit: what every model folder imports instead of copying it.

Packed into each model's SageMaker source archive (`sourcedir.tar.gz`, beside train.py) and copied into the
model artifact's `code/` (beside inference.py), so the same `import modelkit` works in the training
container, the serving container and the local mode. Only the standard library and numpy at import time;
torch, xgboost and scikit-learn are imported by the modules that need them.

- contract: the SageMaker training contract (paths, hyperparameters, the spec packed with the code)
- data: CSV channels, the train/validation split, feature encoding, labels per task type
- metrics: metrics per task type, the 'name=value;' lines the spec's regex reads
- serving: request parsing and prediction records per task type (inference.py's input_fn/output_fn)
- loader: imports an artifact's own serving code in isolation (a champion trained by older code)
- finish: the end of every train.py: serving code, drift baseline, challenger and champion scored on the
  same validation rows, evaluation.json and the model card
- bias: the bias figures of the spec's sensitive attributes (SageMaker Clarify's metrics and analysis.json shape);
  bias_terms: the metric names and descriptions the spec and the evaluate step share (standard library only)
- importance: permutation feature importance through an artifact's serving code
- tracking: per-epoch metric history and system info for evaluation.json (logged to MLflow by the pipeline)
- torchloop: checkpoints, mixed precision and DistributedDataParallel plumbing for PyTorch models
"""

__all__ = ["contract", "data", "metrics", "serving", "loader", "finish", "tracking", "bias", "bias_terms",
           "importance"]
