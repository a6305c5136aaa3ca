"""The web dashboard: the fleet, its devices and their evidence, for IT and auditors.

Served by the collector on its own port (`[web]`), behind an admin credential (a viewer's
suffices; the audit log's page needs an auditor's), in Chinese and English: the overview with
its headline figures and trend, the device list, a device, failing longest, waivers,
enrollment tokens and the audit log, each table downloadable. Starlette routes, Jinja2
renders (autoescaped), uvicorn serves; charts are server-rendered SVG. Pages read the store
only: the dashboard changes nothing but its own sessions and the audit log (logins and
logouts).
"""
