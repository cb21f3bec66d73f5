"""Parallel backends, one per file, each a small executor-like class.

``base`` holds the interface (and the sequential backend, the nested
default); the others are imported lazily through the registry in
:mod:`joblite.parallel._registry`.
"""
