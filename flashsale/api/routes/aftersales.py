"""After-sales over HTTP: a buyer's ticket with evidence files (multipart), ops decide it.

Evidence is judged here before anything is stored: at most 5 files (422), each at
most 5 MB (413 ``payload_too_large``), PNG, JPEG, WebP or PDF by its bytes (415
``unsupported_media_type``); the file's name and claimed type are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import Body, FromPath, QueryParameter

from flashsale.api.auth import principal_of, require_user
from flashsale.api.problems import PayloadTooLarge, UnsupportedMediaType, problem_responses
from flashsale.api.routes import review
from flashsale.api.routes.payments import _order_id, payment_service
from flashsale.errors import ValidationFailed
from flashsale.orders.aftersales import AfterSales, Upload
from flashsale.orders.errors import TicketNotFound
from flashsale.orders.evidence import MAX_FILE_BYTES, MAX_FILES, MAX_REASON_CHARS, sniff
from flashsale.orders.models import Ticket, TicketDecision, TicketStatus

# a reason is some text that is not only blanks, and holds no NUL (PostgreSQL text)
REASON_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"

TICKET_ID = re.compile(r"^tk_[0-9a-f]{24}$")
EVIDENCE_ID = re.compile(r"^ev_[0-9a-f]{24}$")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]
MAX_FORM_BYTES = MAX_FILES * MAX_FILE_BYTES + 1024 * 1024  # five full files and the reason


@dataclass
class TicketOperation(Operation):
    """The OpenAPI operation of the ticket handler, which reads its multipart form itself."""

    def __post_init__(self) -> None:
        form: Any = Schema(
            type=OpenAPIType.OBJECT,
            required=["reason"],
            properties={
                "reason": Schema(
                    type=OpenAPIType.STRING,
                    min_length=1,
                    max_length=MAX_REASON_CHARS,
                    pattern=REASON_PATTERN,
                    description="some text that is not only blanks; no NUL",
                ),
                "evidence": Schema(
                    type=OpenAPIType.ARRAY,
                    max_items=MAX_FILES,
                    items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
                    description="PNG, JPEG, WebP or PDF (judged by the bytes), 5 MB each",
                ),
            },
        )
        self.request_body = RequestBody(
            content={"multipart/form-data": OpenAPIMediaType(schema=form)},
            required=True,
            description="`reason` and 0 to 5 `evidence` files.",
        )


def after_sales(request: Request[Any, Any, Any]) -> AfterSales:
    return AfterSales(payment_service(request))


def _ticket_id(ticket_id: str) -> str:
    if not TICKET_ID.match(ticket_id):
        raise TicketNotFound()
    return ticket_id


async def _read_form(request: Request[Any, Any, Any]) -> tuple[str, list[Upload]]:
    """The reason and the evidence of a ticket, judged before anything is stored."""
    content_type, _ = request.content_type
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType("send the ticket as multipart/form-data")
    form = await request.form()
    reasons = form.getall("reason") if "reason" in form else []
    if len(reasons) != 1 or not isinstance(reasons[0], str):
        raise ValidationFailed("give one `reason` text field")
    reason = reasons[0]
    if len(reason) > MAX_REASON_CHARS or not re.fullmatch(REASON_PATTERN, reason):
        raise ValidationFailed(f"`reason` must be 1 to {MAX_REASON_CHARS} characters, no NUL")
    files = form.getall("evidence") if "evidence" in form else []
    if len(files) > MAX_FILES:
        raise ValidationFailed(f"at most {MAX_FILES} evidence files")
    uploads: list[Upload] = []
    for i, item in enumerate(files):
        if not isinstance(item, UploadFile):
            raise ValidationFailed(f"evidence[{i}] must be a file")
        data = await item.read()
        if len(data) > MAX_FILE_BYTES:
            raise PayloadTooLarge(f"evidence[{i}] is over {MAX_FILE_BYTES} bytes")
        if sniff(data) is None:
            raise UnsupportedMediaType(f"evidence[{i}] is not PNG, JPEG, WebP or PDF")
        uploads.append(Upload(data=data))
    return reason, uploads


class AfterSalesController(Controller):
    path = "/v1"
    tags = ["orders"]  # noqa: RUF012

    @post(
        "/orders/{order_id:str}/after-sales",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        operation_class=TicketOperation,
        request_max_body_size=MAX_FORM_BYTES,
        responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 503),
        summary="Open an after-sales ticket on a delivered order (multipart: reason, evidence)",
        description="`reason` (text, at most 2,000 characters) and 0 to 5 `evidence` files of "
        "at most 5 MB each, PNG, JPEG, WebP or PDF judged by their bytes. One open ticket per "
        "order; delivered orders within the sale's after-sales window, else 409 "
        "order_not_eligible.",
    )
    async def open_ticket(self, request: Request[Any, Any, Any], order_id: FromPath[str]) -> Ticket:
        checked = _order_id(order_id)
        reason, uploads = await _read_form(request)
        return await after_sales(request).open(
            checked, principal_of(request).user_id, reason, uploads
        )

    @get(
        "/after-sales/{ticket_id:str}",
        guards=[require_user],
        security=BEARER,
        responses=problem_responses(401, 404, 503),
        summary="An after-sales ticket (its buyer or an admin)",
    )
    async def get_ticket(self, request: Request[Any, Any, Any], ticket_id: FromPath[str]) -> Ticket:
        principal = principal_of(request)
        owner = None if principal.admin else principal.user_id
        return await after_sales(request).get(_ticket_id(ticket_id), owner)

    @get(
        "/after-sales/{ticket_id:str}/evidence/{evidence_id:str}",
        guards=[require_user],
        security=BEARER,
        responses=problem_responses(401, 404, 503),
        summary="An evidence file's bytes (the ticket's buyer or an admin)",
    )
    async def evidence(
        self, request: Request[Any, Any, Any], ticket_id: FromPath[str], evidence_id: FromPath[str]
    ) -> Response[bytes]:
        principal = principal_of(request)
        if not EVIDENCE_ID.match(evidence_id):
            raise TicketNotFound("no such evidence on this ticket")
        owner = None if principal.admin else principal.user_id
        content_type, data = await after_sales(request).evidence_file(
            _ticket_id(ticket_id), evidence_id, owner
        )
        return Response(
            content=data,
            media_type=content_type,
            headers={
                "x-content-type-options": "nosniff",
                "content-disposition": f'attachment; filename="{evidence_id}"',
            },
        )

    @review.listing("/admin/after-sales", "After-sales tickets for review (admin), oldest first")
    async def list_tickets(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            TicketStatus | None, QueryParameter(name="status", required=False)
        ] = None,
    ) -> list[Ticket]:
        return await after_sales(request).by_status(status)

    @review.decision(
        "/admin/after-sales/{ticket_id:str}/approve",
        "Approve a ticket: its order's payment is refunded, once",
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        data: Annotated[TicketDecision | None, Body()] = None,
    ) -> Ticket:
        return await review.decide(
            request, after_sales(request).approve, _ticket_id(ticket_id), data
        )

    @review.decision(
        "/admin/after-sales/{ticket_id:str}/reject", "Reject a ticket: the order stays as it is"
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        ticket_id: FromPath[str],
        data: Annotated[TicketDecision | None, Body()] = None,
    ) -> Ticket:
        return await review.decide(
            request, after_sales(request).reject, _ticket_id(ticket_id), data
        )
