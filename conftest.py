"""Repo-wide test configuration only."""
