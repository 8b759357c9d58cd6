"""Re-evaluate an exported model and rewrite its metrics.json: `python generate_metrics.py --model NAME`."""

import sys

from veid_ml import cli

if __name__ == "__main__":
    sys.exit(cli.main(["evaluate", *sys.argv[1:]]))
