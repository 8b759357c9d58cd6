# The two set-up commands of the README. Both create .venv from the pinned requirements first.
.PHONY: venv train test verify contact-sheets

venv:
	@bash scripts/bootstrap.sh

train: venv  ## train and export every model on the embedded synthetic data, approving them in ml/models.lock.json
	.venv/bin/veid-ml train

test: venv  ## the whole test suite (CI runs exactly this), including full re-training against the lock
	.venv/bin/python -m pytest -q -rs --durations=8

verify: venv
	.venv/bin/veid-ml verify

contact-sheets: venv
	.venv/bin/veid-ml contact-sheets
