"""The web layer: FastAPI app, thin routers, Jinja templates and static files."""
