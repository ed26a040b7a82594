"""Integrations with chat tools (Slack interactive approvals). Pure: no routes, no network."""
