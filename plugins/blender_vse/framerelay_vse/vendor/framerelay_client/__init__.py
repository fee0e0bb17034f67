"""framerelay_client (placeholder until the client package has its own __init__)."""
