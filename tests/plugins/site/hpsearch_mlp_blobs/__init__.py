"""A third-party hpsearch objective, as an outside package would ship one (for the tests).

Nothing here is imported by hpsearch directly: the ``hpsearch.objectives`` entry point in
``hpsearch_mlp_blobs-0.1.0.dist-info`` names ``hpsearch_mlp_blobs.spec:SPEC``, which stays
free of torch; the builder in ``model.py`` is imported only when a trial runs.
"""

__version__ = "0.1.0"
