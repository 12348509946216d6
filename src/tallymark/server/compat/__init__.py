"""Wire-protocol adapters: other clients' protocols served by tallymark, translated into the
service layer (routes only: no business logic, no SQL).

- :mod:`tallymark.server.compat.comet`: the ``comet_ml`` SDK (see docs/comet.md).
"""
