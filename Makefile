# The two set-up commands of the README. Both create .venv from the pinned requirements first.
.PHONY: venv train test verify approve contact-sheets demo go-test

venv:
	@bash scripts/bootstrap.sh

train: venv  ## train and export every model into ml/<model>/weights.candidate/; prints a verdict per model, never changes the lock
	.venv/bin/veid-ml train

test: venv  ## the whole test suite (CI runs exactly this), including full re-training against the lock
	.venv/bin/python -m pytest -q -rs --durations=8

verify: venv
	.venv/bin/veid-ml verify

approve: venv  ## make approve MODEL=name: install its candidate into weights/ and record it in the lock, with provenance
	@test -n "$(MODEL)" || { echo "usage: make approve MODEL=<model name>" >&2; exit 2; }
	.venv/bin/veid-ml approve $(MODEL)

contact-sheets: venv
	.venv/bin/veid-ml contact-sheets

demo: venv  ## synthetic genuine / impostor / attack / forged / expired submissions through the pipeline; docs/demo.png
	.venv/bin/veid-ml demo

go-test: venv  ## pkg/inference against golden files Python writes on this machine (also part of `make test`)
	.venv/bin/python -m pytest -q tests/test_go_inference.py
