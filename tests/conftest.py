import os

# Every test runs in fast mode with a non-interactive matplotlib backend.
os.environ.setdefault("COURSEKIT_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
