"""EDGE: the REST API (`/api/v1`), its wire forms and error mapping."""
