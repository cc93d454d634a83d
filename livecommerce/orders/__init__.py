"""Orders: the order model and its state machine, the group-commit writer, expiry."""
