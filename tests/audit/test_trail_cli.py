"""``biasaudit keys create --name / list / revoke``, ``list``, ``show``, ``diff`` and
``verify-log`` in embedded mode (the local SQLite store that ``biasaudit run`` writes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import chi2_contingency
from sqlalchemy import text

from audit.cli import main
from audit.settings import get_settings
from audit.storage import db
from audit.storage.events import verify_log
from audit.storage.models import Event
from tests.audit.api.helpers import make_csv
from tests.audit.api.test_trail_api import _even_csv
from tests.factories import spec_for


def _run(tmp_path: Path, name: str, csv: bytes) -> str:
    data = tmp_path / f"{name}.csv"
    data.write_bytes(csv)
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(spec_for(data, name=name)))
    out = tmp_path / f"out-{name}"
    assert main(["run", str(spec), "--out", str(out)]) in (0, 1)
    return str(json.loads((out / "results.json").read_text())["audit"]["id"])


def test_history_commands_on_the_embedded_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gap = _run(tmp_path, "before", make_csv())
    even = _run(tmp_path, "after", _even_csv())
    capsys.readouterr()

    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("id\tcreated")
    assert [line.split("\t")[0] for line in out[1:]] == [even, gap]  # newest first
    assert "awaiting review" in out[1] and "succeeded" in out[1]

    assert main(["show", gap]) == 0
    shown = capsys.readouterr().out
    assert f"id              {gap}" in shown and "verdict         fail" in shown
    assert "finding         fail: demographic sex female impact_ratio" in shown

    assert main(["diff", gap, even, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == {"a": "fail", "b": "pass", "changed": True}
    key = ("sex", "female", "selection_rate")
    row = next(m for m in result["metrics"] if (m["attribute"], m["group"], m["metric"]) == key)
    p = chi2_contingency([[50, 150], [98, 102]], correction=False)[1]
    assert row["significant"] is True and row["p_value"] == pytest.approx(p)
    assert main(["diff", gap, even]) == 0
    printed = capsys.readouterr().out
    assert "verdict: fail -> pass (changed)" in printed
    assert "* demographic sex female selection_rate: 0.25 -> 0.49" in printed

    assert main(["verify-log"]) == 0
    assert "event log intact" in capsys.readouterr().out
    with db.session_scope(get_settings().db_url) as session:  # embedded runs name the user
        logged = [(e.action, e.actor) for e in session.query(Event).order_by(Event.seq)][:2]
    assert [a for a, _ in logged] == ["audit.submitted", "audit.finished"]
    assert all(actor.startswith("cli") for _, actor in logged)
    # the installed command, as an operator runs it, after a result was edited in the file
    with db.make_engine(get_settings().db_url).begin() as conn:
        conn.execute(
            text("UPDATE results SET document = json_set(document, '$.verdict', 'pass') "
                 "WHERE audit_id = :a"), {"a": gap},
        )  # fmt: skip
    env = {**os.environ, "BIASAUDIT_DATABASE_URL": get_settings().db_url}
    done = subprocess.run([sys.executable, "-m", "audit.cli", "verify-log"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"result of audit {gap} was edited" in done.stdout
    assert main(["show", "no-such-audit"]) == 2
    assert "ID: no audit 'no-such-audit'" in capsys.readouterr().err


def test_keys_carry_a_person_and_can_be_listed_and_revoked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "Ada Lovelace <ada@example.org>"
    assert main(["keys", "create", "--role", "reviewer", "--project", "acme", "--name", name]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["keys", "create", "--role", "admin", "--project", "beta"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--project", "acme"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id\tname\trole\tproject\tcreated\tlast used\trevoked"
    [row] = [line.split("\t") for line in lines[1:]]
    assert row[1:4] == [name, "reviewer", "acme"] and row[5:] == ["-", "-"]
    assert token not in "\n".join(lines)  # only the hash is stored
    assert main(["keys", "list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # both projects
    assert main(["keys", "revoke", row[0]]) == 0
    assert main(["keys", "revoke", row[0]]) == 2  # already revoked
    assert "no live token with id" in capsys.readouterr().err
    main(["keys", "list", "--project", "acme"])
    assert capsys.readouterr().out.splitlines()[1].split("\t")[6] != "-"
    bad = main(["keys", "create", "--role", "admin", "--project", "acme", "--name", "a\x00b"])
    assert bad == 2 and "name:" in capsys.readouterr().err
    with db.session_scope(get_settings().db_url) as session:
        actions = [e.action for e in session.query(Event).order_by(Event.seq)]
        assert actions == ["key.created", "key.created", "key.revoked"]
        assert verify_log(session=session).intact
