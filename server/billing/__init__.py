"""Metered billing: pure functions from usage sessions to invoices, ledger entries and bank files.

Nothing here touches the database, the clock or the network: the callers (the month
close, the API, the ``atelier billing`` and ``atelier export`` commands) read the rows,
hand them over as frozen dataclasses, and store what comes back.

- :mod:`~server.billing.money`: integer cents, exact rates, every rounding rule.
- :mod:`~server.billing.periods`: months, and the workshop day a session belongs to.
- :mod:`~server.billing.prices`: price lists, their versions, plans, consumables.
- :mod:`~server.billing.rating`: the rating engine, sessions and sales to lines.
- :mod:`~server.billing.prepaid`: how long a prepaid balance keeps a machine unlocked.
- :mod:`~server.billing.lines`, :mod:`~server.billing.invoices`: lines, invoices,
  credit notes, numbers, the hash chain.
- :mod:`~server.billing.close`: the month close.
- :mod:`~server.billing.ledger`: double-entry posting rules and balances.
- :mod:`~server.billing.pdf`, :mod:`~server.billing.sepa`, :mod:`~server.billing.fec`,
  :mod:`~server.billing.csv_export`: what leaves the workshop.
- :mod:`~server.billing.errors`: why a step is refused.

The rules, for the treasurer, are in ``docs/billing.md``.
"""
