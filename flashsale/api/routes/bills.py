"""Bills of a checkout (owner): read one, pay one with the same bodies as an order payment."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody

from flashsale.api.auth import principal_of, require_user
from flashsale.api.problems import problem_responses
from flashsale.api.routes.payments import payment_service
from flashsale.orders.bills import BillPayment, Bills
from flashsale.orders.errors import BillNotFound
from flashsale.orders.models import Bill
from flashsale.payments.models import PaymentCreate

BILL_ID = re.compile(r"^bill_[0-9a-f]{24}$")
BEARER: list[dict[str, list[str]]] = [{"BearerAuth": []}]


def _bill_id(bill_id: str) -> str:
    if not BILL_ID.match(bill_id):
        raise BillNotFound()
    return bill_id


class BillsController(Controller):
    path = "/v1/bills"
    tags = ["orders"]  # noqa: RUF012

    @get(
        "/{bill_id:str}",
        guards=[require_user],
        security=BEARER,
        responses=problem_responses(401, 404, 503),
        summary="A bill of the caller's checkout, with its status (open, paid, closed)",
    )
    async def get_bill(self, request: Request[Any, Any, Any], bill_id: FromPath[str]) -> Bill:
        bills = Bills(payment_service(request))
        return await bills.get(_bill_id(bill_id), principal_of(request).user_id)

    @post(
        "/{bill_id:str}/payments",
        guards=[require_user],
        security=BEARER,
        status_code=201,
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
        summary="Pay a bill: every order it covers, with one debit (or one trade)",
        description="The parent bill pays the whole checkout; a merchant bill that merchant's "
        "orders, after which the parent answers 409 bill_not_payable. When coins cover the "
        "bill only `balance` with the payment password is taken (409 balance_required).",
    )
    async def pay_bill(
        self,
        request: Request[Any, Any, Any],
        bill_id: FromPath[str],
        data: JSONBody[PaymentCreate],
    ) -> BillPayment:
        bills = Bills(payment_service(request))
        return await bills.pay(_bill_id(bill_id), principal_of(request).user_id, data)
