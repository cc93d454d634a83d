"""The buy use-case (hold, order, charge, notify) for every transport, and what it reads."""
