"""The web approval console (`/console/`): approvers sign in with their admin token and decide in a browser.

`web.Console` holds the routes and sessions; `render` builds the HTML from `templates/`; `static/` holds the
only script and style sheet the Content-Security-Policy lets the page load.
"""
