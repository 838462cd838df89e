"""A local stand-in for the providers' APIs, speaking each one's documented contract over HTTP."""
