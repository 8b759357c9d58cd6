"""Train and export the MRZ locator: `python train.py --seed 42 --export-format savedmodel`.

The model itself is task.py; the training loop, export and metrics are veid_ml.training's (`--help` for options).
"""

from veid_ml import training

if __name__ == "__main__":
    training.main("mrz_locator")
