"""Bridges from other training libraries into a study's trials."""
