"""The search-space language: dimensions, spaces, and their compiled forms per backend."""

from .dimension import SearchDimension, SearchSpaceType
from .search_space import SearchSpace

__all__ = ["SearchDimension", "SearchSpace", "SearchSpaceType"]
