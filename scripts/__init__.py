"""Tools for building the demo model and the research benches behind it; not part of the clapper package.

    python scripts/demo_model.py --work runs/demo --install   # the built-in demo model's recipe
    python scripts/temporal.py                                # fast paths compared on the synthetic world
    python scripts/motion_probe.py                            # what the vision features tell of motion

Run them from the repository root of a development install (`pip install -e ".[dev]"`).
"""
