"""The governed models: which task module trains each one, and where its approved and candidate artifacts live.

Adding a model = one task module (ml/<name>/task.py, the interface in veid_ml.training) + one line in MODELS below.
"""

import importlib

from dataclasses import dataclass
from pathlib import Path

ML_DIR = Path(__file__).resolve().parent.parent
LOCK_PATH = ML_DIR / "models.lock.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the spec's model_name, also the package name
    artifact: str  # SavedModel directory name under weights/; the frozen graph is <artifact>_frozen.pb

    @property
    def package_dir(self) -> Path:
        return ML_DIR / self.name

    @property
    def weights_dir(self) -> Path:
        return self.package_dir / "weights"

    @property
    def candidate_dir(self) -> Path:
        """Where training writes (git-ignored); `veid-ml approve` installs it into weights_dir."""
        return self.package_dir / "weights.candidate"

    @property
    def train_script(self) -> Path:
        return self.package_dir / "train.py"


MODELS = {
    m.name: m
    for m in (
        ModelSpec("facial_verification", "facial_model"),
        ModelSpec("liveness_detection", "liveness_model"),
        ModelSpec("ocr_extraction", "ocr_model"),
        ModelSpec("face_detection", "face_detection_model"),
        ModelSpec("mrz_locator", "mrz_locator_model"),
    )
}


def get(name: str) -> ModelSpec:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def find_lock(start: Path | None = None) -> Path:
    """The lock of the checkout containing `start` (default: the working directory), else the installed package's:
    run inside another copy of the repository, commands check that copy's models."""
    start = Path.cwd() if start is None else Path(start)
    for folder in (start.resolve(), *start.resolve().parents):
        candidate = folder / "ml" / LOCK_PATH.name
        if candidate.is_file() and (folder / "ml" / "veid_ml").is_dir():
            return candidate
    return LOCK_PATH


def load_task(name: str):
    """The model's task module (CONFIG, QUICK, load_data, build, epoch_batches, finish, evaluate)."""
    return importlib.import_module(f"{get(name).name}.task")


def available() -> list[ModelSpec]:
    """Models whose train script exists in this checkout (the models are added one issue at a time)."""
    return [m for m in MODELS.values() if m.train_script.is_file()]
