"""levers-ingest: contacts over HTTP for backends in any language (`POST /v1/contacts`).

    from producers.ingest.app import create_app   # an ASGI app from Settings
    levers-ingest [--host H] [--port P]           # the same, served by uvicorn

Modules: `models` (wire shapes), `contacts` (the router), `auth` (bearer tokens), `limits`
(body size), `intake` (validate and enqueue in one transaction), `idempotency`, `metrics`,
`app` (assembly), `cli`. Nothing is imported here, so that `cli` can set up the environment
before prometheus_client is loaded.
"""
