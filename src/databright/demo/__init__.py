"""The demonstration market of ``make run``: a generated cast and the session it plays."""

from databright.demo.session import ACCEPT_BPS, PAYMENT_WEI, run_session

__all__ = ["ACCEPT_BPS", "PAYMENT_WEI", "run_session"]
