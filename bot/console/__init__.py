"""The staff console: server-rendered pages for dealer staff (see bot/console/routes.py and auth.py)."""
