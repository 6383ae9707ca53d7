"""The admin portal: a server-rendered Flask app on its own port, for the admin network.

Build it with :func:`appliance.portal.app.create_app`.
"""
