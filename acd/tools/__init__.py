"""Tools apart from the server: the load generator (`acd load`, :mod:`acd.tools.load`) and the
test softphone (`acd phone`, :mod:`acd.tools.softphone`). The server never imports them."""
