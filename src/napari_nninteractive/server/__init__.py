"""nninteractive-serve: the nnInteractive remote-inference server (FastAPI), built on the core session."""
