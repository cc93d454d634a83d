"""Users, password hashing, session tokens and roles per shopstream."""
