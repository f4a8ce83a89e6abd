"""Reports of a stored results document: HTML (``html``), PDF (``pdf``), charts (``svg``)
and the NYC Local Law 144 tables (``ll144``)."""
