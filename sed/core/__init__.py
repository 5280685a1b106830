"""Fixed facts shared by every layer: class list, feature spec, frame grid, error types."""
