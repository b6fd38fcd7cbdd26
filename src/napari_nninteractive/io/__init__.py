"""Reading and writing volumes and prompt files (headless)."""
