"""The HTTP API (FastAPI): ``from audit.api.app import create_app``.

Layout, after the FastAPI full-stack template: ``app`` (factory), ``middleware``
(request id, logs, security headers, JSON 500s), ``protocol`` (uvicorn with header
caps and slow-client timeouts), ``deps`` (``SessionDep``, ``CurrentToken``, the one
role rule ``authorize``), ``schemas`` (request/response bodies), ``openapi`` (the
document as the server behaves), ``routes/<resource>.py``, ``body`` (JSON bodies,
read the same way on every route), ``uploads``/``sniff``/``pickles``/``levels``
(streamed, checked dataset uploads), ``submission`` (spec checks; paths through
``audit.engine.confine``), ``group_commit``, ``metrics``, ``logging``, ``errors``.
Nothing here imports torch, transformers or ``workers``.
"""
