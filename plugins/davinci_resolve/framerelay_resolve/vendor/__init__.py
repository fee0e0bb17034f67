"""Vendored copies (see scripts/vendor-client): the daemon's client package, standard library only."""
