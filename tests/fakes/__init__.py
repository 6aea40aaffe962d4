"""Fakes of outside services that speak their real wire format over real sockets on 127.0.0.1."""
