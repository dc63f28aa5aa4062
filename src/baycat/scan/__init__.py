"""Reading the local tree: walk, hash, filters, the local manifest."""
