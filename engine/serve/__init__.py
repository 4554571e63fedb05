"""`callcc serve`: the approval service (a JSON API under /v1 and, when present, the browser
inbox at /), served by uvicorn. The only package that imports fastapi, starlette or uvicorn
(`pip install callcc[serve]`); nothing outside it imports this package at start-up.

Ownership, one line a module:
- `config`: `ServeConfig`, what `callcc serve` was started with; the loopback test.
- `auth`: users and roles from the tokens file, constant-time token look-up, the inbox's
  signed session cookie and CSRF token, the FastAPI dependencies `viewer` ... `admin`.
- `hub`: `EventHub`, the run events of the service's runtimes fanned out to subscribers (SSE).
- `webhooks`: `Webhooks`, the `--webhook` sender fed from the hub: signed JSON events or Slack
  messages for each suspension and end, per-receiver bounded queues, retries with backoff;
  `verify_signature`, a receiver's check.
- `expiry`: `Expiry`, the service's periodic task calling `engine.inbox.aexpire`.
- `tokens`: `python -m engine.serve.tokens FILE`, a tokens file with a random token per role
  (`make serve`).
- `views`: `RunView`, `PendingView`, `DecisionIn`: the API's JSON shapes as dataclasses;
  `ServeError`, a refusal with its status (also importable from `service`).
- `_checks`: what a decision request must pass before it is recorded (404/403/409/422).
- `service`: `Service`, the operations the API and the inbox share, each for an acting user,
  raising `ServeError(status, message, pointer)`.
- `api`: the /v1 router: request and response models (the OpenAPI document), SSE.
- `app`: `create_app(config)`: the routers, the security headers, the error shape; `serve`.
- `inbox`: the browser inbox at / (sign-in, pending decisions and their forms, run and spec
  pages); `_pages` their plumbing (rendering, the only importer of jinja2; security headers,
  forms and CSRF, the flash); `_present` what the pages show of each view; `templates/` and
  `static/` the pages, CSS and JavaScript, shipped in the wheel.
"""
