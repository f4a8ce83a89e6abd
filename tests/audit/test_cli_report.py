"""`biasaudit report ID --format html|pdf|csv [--out FILE]` over the embedded store and out dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit import run_audit
from audit.cli.main import main
from audit.settings import get_settings
from audit.storage.db import session_scope
from audit.storage.repo import add_review
from tests.audit.conftest import spec_for
from tests.pdf_tools import first_page_png, ink_share, pdf_text


def test_report_of_a_stored_audit_carries_its_reviews(
    tmp_path: Path, hiring_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = run_audit(spec_for(hiring_csv))
    audit_id = results["audit"]["id"]
    with session_scope(get_settings().db_url) as session:
        add_review(
            session=session,
            project="default",
            audit_id=audit_id,
            decision="approve",
            comment="Four-fifths met after remediation",
            reviewer="Rita Reviewer",
        )
    out = tmp_path / "out" / "report.pdf"
    assert main(["report", audit_id, "--format", "pdf", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert ink_share(first_page_png(out.read_bytes(), tmp_path)) > 0.02
    text = " ".join(pdf_text(out.read_bytes(), tmp_path).split())
    assert results["verdict"].upper() in text and "Rita Reviewer" in text
    assert "Review state: approved" in text and "Four-fifths met after remediation" in text
    assert "Sex categories" in text and "Number of applicants" in text  # the LL144 table
    html = tmp_path / "r.html"
    assert main(["report", audit_id, "--format", "html", "--out", str(html)]) == 0
    assert "Rita Reviewer" in html.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", audit_id, "--format", "csv"]) == 0  # standard output
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("probe,attribute,group,metric,value,ci_low,ci_high,n")
    assert any(",impact_ratio," in line for line in lines[1:])


def test_report_of_an_out_directory(tmp_path: Path, hiring_csv: Path) -> None:
    run_audit(spec_for(hiring_csv), tmp_path / "run", store=False)
    csv_out = tmp_path / "findings.csv"
    assert main(["report", str(tmp_path / "run"), "--format", "csv", "--out", str(csv_out)]) == 0
    assert csv_out.read_text(encoding="utf-8").startswith("probe,attribute,group,metric")
    html_out = tmp_path / "again.html"
    results_file = str(tmp_path / "run" / "results.json")
    assert main(["report", results_file, "--out", str(html_out)]) == 0
    assert html_out.read_text(encoding="utf-8") == (tmp_path / "run" / "report.html").read_text(
        encoding="utf-8"
    )  # the same report that run wrote (no sign-off: reviews are not in a file)


def test_unknown_audit_and_bad_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = "6f1c0f52-9d5e-4a63-9a70-5b1a2b8e1f01"
    assert main(["report", missing, "--format", "pdf", "--out", str(tmp_path / "x.pdf")]) == 2
    err = capsys.readouterr().err
    assert f"'{missing}' is neither an audit id in the database" in err
    assert not (tmp_path / "x.pdf").exists()
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"not": "results"}), encoding="utf-8")
    assert main(["report", str(bad)]) == 2
    assert f"{bad}: not a results.json document" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--format", "docx"]) == 2  # argparse names the choice
    assert "invalid choice: 'docx'" in capsys.readouterr().err


def test_unfinished_audit_exits_2(capsys: pytest.CaptureFixture[str], hiring_csv: Path) -> None:
    from audit.storage.db import upgrade
    from audit.storage.repo import create_audit

    url = get_settings().db_url
    upgrade(url)
    with session_scope(url) as session:
        audit = create_audit(
            session=session,
            project="default",
            spec=spec_for(hiring_csv),
            name="test-hiring",
            domain="hiring",
            spec_sha256="0" * 64,
        )
        audit_id = audit.id
    assert main(["report", audit_id]) == 2
    assert f"audit {audit_id} is queued" in capsys.readouterr().err
