"""Model code, one family per file: ``markov``, ``mlp``, ``gan``, ``vae``, ``gpt``,
``diffusion``. Import the file you need, e.g. ``from coursekit.models.gpt import GPT``."""
