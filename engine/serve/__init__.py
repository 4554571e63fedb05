"""`callcc serve`: the approval service (a JSON API under /v1 and, when present, the browser
inbox at /), served by uvicorn. The only package that imports fastapi, starlette or uvicorn
(`pip install callcc[serve]`); nothing outside it imports this package at start-up.

Ownership, one line a module:
- `config`: `ServeConfig`, what `callcc serve` was started with; the loopback test.
- `auth`: users and roles from the tokens file, constant-time token look-up, the inbox's
  signed session cookie and CSRF token, the FastAPI dependencies `viewer` ... `admin`.
- `hub`: `EventHub`, the run events of the service's runtimes fanned out to subscribers (SSE).
- `views`: `RunView`, `PendingView`, `DecisionIn`: the API's JSON shapes as dataclasses.
- `service`: `Service`, the operations the API and the inbox share, each for an acting user,
  raising `ServeError(status, message, pointer)`.
- `api`: the /v1 router: request and response models (the OpenAPI document), SSE.
- `app`: `create_app(config)`: the routers, the security headers, the error shape; `serve`.
"""
