"""The manifest format: segments, roots, files, the remote manifest."""
