"""Passwords never show: not in repr()/str() of specs, plans, reports or the sandbox, not in the
server's statement log; generated passwords are `Secret`s."""

from __future__ import annotations

import copy
import pickle

import pytest

import rds_pg
from rds_pg import UserSpec

CHOSEN = "Chosen-Pa55word-xyz"


def shown(obj) -> str:
    return repr(obj) + "\n" + str(obj)


def test_secret_redacts_and_reveals():
    s = rds_pg.Secret(CHOSEN)
    assert repr(s) == "Secret([redacted])"
    assert str(s) == "[redacted]"
    assert f"{s}" == "[redacted]" and "%s" % s == "[redacted]"
    assert s.reveal() == CHOSEN
    assert s == rds_pg.Secret(CHOSEN) and s != rds_pg.Secret("other") and s != CHOSEN
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        copy.copy(s)


def test_specs_never_show_the_password():
    for password in (CHOSEN, rds_pg.Secret(CHOSEN)):
        spec = UserSpec("shop", password=password, connection_limit=5)
        assert CHOSEN not in shown(spec)
        assert "password=Secret([redacted])" in repr(spec)
        assert isinstance(spec.password, rds_pg.Secret) and spec.password.reveal() == CHOSEN
    assert UserSpec("shop").password is None
    with pytest.raises(TypeError, match="str or an rds_pg.Secret"):
        UserSpec("shop", password=b"bytes")


def test_plans_reports_and_logs_never_show_passwords(sandbox):
    with sandbox.connect() as rds:
        plan = rds.plan_ensure_user(UserSpec("chosen", password=CHOSEN))
        assert CHOSEN not in shown(plan) + "".join(shown(s) for s in plan.steps)
        assert "'[redacted]'" in plan.steps[0].sql

        report = rds.ensure_user(UserSpec("chosen", password=CHOSEN))
        assert report.generated_password is None
        texts = shown(report) + "".join(shown(s) for s in report.steps)
        assert CHOSEN not in texts and "'[redacted]'" in texts

        generated = rds.ensure_user("generated")
        secret = generated.generated_password
        assert isinstance(secret, rds_pg.Secret)
        assert "generated_password=Secret([redacted])" in repr(generated)
        texts = shown(generated) + "".join(shown(s) for s in generated.steps)
        assert secret.reveal() not in texts

        rotated = rds.rotate_password("generated")
        new = rotated.generated_password
        assert isinstance(new, rds_pg.Secret) and new != secret
        assert new.reveal() not in shown(rotated) + shown(rds.plan_rotate_password("generated", CHOSEN))
        rds.rotate_password("chosen", rds_pg.Secret(CHOSEN + "2"))

        log = sandbox.log_text()
        assert "CREATE ROLE" in log and "SCRAM-SHA-256$" in log
        for cleartext in (CHOSEN, CHOSEN + "2", secret.reveal(), new.reveal()):
            assert cleartext not in log

    master = sandbox.master_password
    assert isinstance(master, rds_pg.Secret)
    assert master.reveal() not in shown(sandbox)
    assert master.reveal() in sandbox.master_dsn, "the sandbox DSN carries its throw-away password"
    with sandbox.connect() as rds:
        assert master.reveal() not in shown(rds)
