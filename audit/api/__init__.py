"""The HTTP API (FastAPI): ``from audit.api.app import create_app``.

Layout, after the FastAPI full-stack template: ``app`` (factory and
middleware), ``deps`` (``SessionDep``, ``CurrentToken`` and role checks),
``schemas`` (request/response bodies), ``routes/<resource>.py``,
``uploads``/``sniff`` (streamed, checked dataset uploads), ``submission``
(spec validation and path confinement), ``metrics``, ``logging``, ``errors``.
Nothing here imports torch, transformers or ``workers``.
"""
