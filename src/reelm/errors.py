"""Domain errors: each carries the HTTP status, a stable code and a message a user can act on.

Services raise these; one exception handler in the web app turns them into
`{"error": {"code": ..., "message": ...}}` and the CLI prints the message.
"""

from __future__ import annotations


class ReelmError(Exception):
    status: int = 400
    code: str = "bad_request"
    headers: dict[str, str] | None = None
    """Headers the web edge adds to the error response (a router sets them, never a service)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(ReelmError):
    status = 422
    code = "invalid_input"


class FieldErrors(InvalidInput):
    """Several fields of one form are wrong: every one of them, so the user fixes them all at
    once. `fields` maps each field to its error; one error keeps its own code and status, several
    are `invalid_fields` (422). The message lists them all."""

    def __init__(self, fields: dict[str, ReelmError]) -> None:
        errors = list(fields.values())
        one = errors[0] if len(errors) == 1 else None
        super().__init__(
            " ".join(e.message for e in errors),
            code=one.code if one else "invalid_fields",
            status=one.status if one else 422,
        )
        self.fields = fields

    def has_code(self, code: str) -> bool:
        return any(e.code == code for e in self.fields.values())


class NotFound(ReelmError):
    status = 404
    code = "not_found"


class Conflict(ReelmError):
    status = 409
    code = "conflict"


class PolicyError(ReelmError):
    """A residency policy or its staff-access file is invalid; the message names the file, the
    key and the fix. Raised by both the policy loader and the Cedar loader, so it lives here."""

    status = 422
    code = "invalid_policy"


class Unauthorized(ReelmError):
    status = 401
    code = "unauthorized"


class Forbidden(ReelmError):
    status = 403
    code = "forbidden"


class RateLimited(ReelmError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TryAgainLater(ReelmError):
    """The request cannot be served for a few seconds (the user's data is being moved between
    regions); answered with 503 and a Retry-After the client should honour."""

    status = 503
    code = "try_again_later"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ResidencyViolation(ReelmError):
    """A protected record was about to be written outside its owner's home region.

    Raised before anything is written; the surrounding transaction is rolled back.
    """

    status = 500
    code = "residency_violation"


class EgressRefused(ReelmError):
    """Something other than a PUBLIC schema tried to leave a region."""

    status = 500
    code = "egress_refused"


# Errors of the domains, one class each, so the same message and code are written once.


class UserNotFound(NotFound):
    code = "user_not_found"

    def __init__(self, handle: str | None = None) -> None:
        super().__init__(f"No user @{handle}." if handle else "No such user.")


class VideoNotFound(NotFound):
    code = "video_not_found"

    def __init__(self) -> None:
        super().__init__("No such video.")


class CommentNotFound(NotFound):
    code = "comment_not_found"

    def __init__(self, message: str = "No such comment.") -> None:
        super().__init__(message)


class UploadNotFound(NotFound):
    code = "upload_not_found"

    def __init__(self) -> None:
        super().__init__("No such upload.")
