"""Business logic between the routes and the storage layer."""
