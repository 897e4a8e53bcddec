"""Errors that carry a user-facing status and one readable sentence."""

from __future__ import annotations


class ServiceError(Exception):
    """An HTTP error reply: ``{"status": status, "error": message}``."""

    status = 500

    def __init__(
        self, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class NotFound(ServiceError):
    status = 404


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Overloaded(ServiceError):
    status = 503


class CliError(Exception):
    """A user error on the command line: printed as one line on stderr, exit status 2."""
