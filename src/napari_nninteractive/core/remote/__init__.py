"""Remote inference: the nnInteractive HTTP protocol (version 2.6.0), its array wire format and our client."""
