"""Checks the lint session runs that are not a linter of their own (see noxfile.py)."""
