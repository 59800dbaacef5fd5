"""The HTTP routes, one module per resource: each turns HTTP into an engine call and back, nothing more."""
