"""Round trip with an image editor: export a frame, open it, take the saved edit back.

`session.EditSession` is one job's round trip; `jobs.RoundTrips` is the daemon's, one session per
round-trip job, feeding the job queue. Importing `records`, `editor` or `jobs` imports no media
code, so the daemon starts without it: decoding, encoding and watching wait for the first round
trip.
"""
