"""Reports of a stored results document: HTML (``html``, with ``sections``, ``summary``,
``legend``, ``ll144`` and the charts in ``svg``), the same report as PDF (``pdf``,
WeasyPrint) and a formula-safe CSV (``csv_report``). See docs/reports.md."""
