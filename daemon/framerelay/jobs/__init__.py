"""Jobs: the spec, the event log, the persistent store, the queue, the executor seam and the worker.

Nothing here imports torch or grpc: the engine is reached through `executor.Executor`, and the
transports (gRPC and HTTP) live in `framerelay.service`.
"""
