"""The HTTP surface: routes that parse, call a service and render; the middlewares; error rendering."""
