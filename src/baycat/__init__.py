"""baycat: efficient backups of a directory tree to S3 and S3-compatible stores."""

__version__ = "0.1.0"
