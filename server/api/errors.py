"""Workshop and billing errors as HTTP answers: 403 for what the caller may not do, 404 for what
does not exist, 409 for clashes (with a record, an overlapping price, a closed month), 422 for bad values."""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from server.billing.catalogue import AlreadyRecorded
from server.billing.errors import BillingError, OverlappingPrices, PeriodClosed
from server.billing.store import NotConfigured, UnknownRecord
from server.workshop import AlreadyExists, Conflict, InvalidValue, NotFound, WorkshopError

# The first matching kind wins: a refusal of permission is said before anything else.
_STATUS: dict[type[Exception], int] = {
    PermissionError: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    AlreadyExists: status.HTTP_409_CONFLICT,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidValue: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnknownRecord: status.HTTP_404_NOT_FOUND,
    NotConfigured: status.HTTP_409_CONFLICT,
    AlreadyRecorded: status.HTTP_409_CONFLICT,
    OverlappingPrices: status.HTTP_409_CONFLICT,
    PeriodClosed: status.HTTP_409_CONFLICT,
    LookupError: status.HTTP_404_NOT_FOUND,  # a billing record missing, e.g. no price on a day
    ValueError: status.HTTP_422_UNPROCESSABLE_CONTENT,  # a billing value that cannot be right
}


async def _refused(request: Request, error: Exception) -> JSONResponse:
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
    app.add_exception_handler(WorkshopError, _refused)
    app.add_exception_handler(BillingError, _refused)
    app.add_exception_handler(IntegrityError, _integrity_error)
