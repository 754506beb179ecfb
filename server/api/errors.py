"""Workshop errors as HTTP answers: 403 for what the caller may not do, 404 for what does not exist,
409 for clashes, 422 for bad values."""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from server.workshop import AlreadyExists, Conflict, InvalidValue, NotFound, WorkshopError

# The first matching kind wins: a refusal of permission is said before anything else.
_STATUS: dict[type[Exception], int] = {
    PermissionError: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    AlreadyExists: status.HTTP_409_CONFLICT,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidValue: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


async def _workshop_error(request: Request, error: Exception) -> JSONResponse:
    code = next(
        (code for kind, code in _STATUS.items() if isinstance(error, kind)), status.HTTP_400_BAD_REQUEST
    )
    return JSONResponse({"detail": str(error)}, status_code=code)


async def _integrity_error(request: Request, error: Exception) -> JSONResponse:
    # The checks in server.workshop come first; this is two managers racing each other.
    return JSONResponse(
        {"detail": "this conflicts with a record saved meanwhile; reload and try again"},
        status_code=status.HTTP_409_CONFLICT,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(WorkshopError, _workshop_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
