"""The built-in CPU engine: an OpenAI-compatible server on transformers.

``tiny`` creates a small random-weight model locally, ``generation`` samples from
a model directory, ``protocol`` holds the request and response shapes and
``server`` is the WSGI app. Nothing here imports torch at package import time.
"""
