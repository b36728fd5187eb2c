"""HTTP surface: thin Starlette routes over the core, middlewares, error rendering."""
