"""``python -m coursekit.authoring.sandbox``: one grading worker (see the package's docstring)."""
from coursekit.authoring.sandbox.worker import serve

serve()
