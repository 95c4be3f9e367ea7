"""The web console's domain: staff accounts and their sign-in (`staff`), the dashboard's
figures (`dashboard`), the staff live topics (`live`) and the demo staff (`demo_staff`).

The console acts with the rights of the admin or merchant user a staff account maps to and
calls the same /v1 endpoints a script would; docs/console.md.
"""
