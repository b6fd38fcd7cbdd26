"""Training and fine-tuning with simulated users (nninteractive-train)."""
