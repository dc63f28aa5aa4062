"""Object stores behind one small protocol: S3, a local directory, read-only HTTP."""
