"""Class controllers, one module per area."""
