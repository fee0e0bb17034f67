"""The daemon's transports and plumbing: gRPC and HTTP/JSON over one API, token auth, discovery,
configuration and logging. Nothing here imports torch; the engine is reached through the executor.
"""
