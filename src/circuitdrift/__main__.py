"""``python -m circuitdrift`` (and ``accelerate launch -m circuitdrift ...``) runs the CLI."""

from circuitdrift.cli import run

if __name__ == "__main__":
    run()
