"""The seed's procedure (using-amazon-rds.rst) through the Python API, on every selected version,
proven by logging in as the users with psql."""

from __future__ import annotations

import pytest

import rds_pg
from conftest import newest_pg_dump_major
from rds_pg import DatabaseSpec, Extension, ReadOnlyGrant, UserSpec


def test_seed_flow_provision_use_and_tear_down(sandbox_each, psql_each, tmp_path):
    sb, psql = sandbox_each, psql_each
    extensions = [Extension.HSTORE] + (["postgis"] if sb.has_postgis else [])
    user = UserSpec("project_user")
    database = DatabaseSpec("project_db", "project_user", extensions=extensions)
    readonly = UserSpec("project_readonly", password=rds_pg.Secret("ro-pass-1"))
    grant = ReadOnlyGrant("project_db", "project_readonly")

    with rds_pg.connect(sb.master_dsn) as rds:
        assert rds.major_version == sb.major_version
        assert rds.current_user == sb.master_user
        dry = rds.plan_ensure_user(user)
        assert [s.sql for s in dry.steps] == dry.sql
        assert "'[redacted]'" in str(dry)

        created = rds.ensure_user(user)
        assert created.changed
        password = created.generated_password
        assert isinstance(password, rds_pg.Secret)
        assert len(password.reveal()) == 40

        plan = rds.plan_ensure_database(database)
        assert plan and not plan.is_empty()
        assert any(s.sql.startswith("CREATE DATABASE") and s.standalone for s in plan.steps)
        report = rds.ensure_database(database)
        assert report.changed
        assert report.temporary_grants == ["project_user"]
        assert rds.ensure_user(readonly).generated_password is None
        assert rds.grant_read_only(grant).changed

        # Again: nothing to change, nothing sent.
        for again in (
            rds.ensure_user(user),
            rds.ensure_database(database),
            rds.ensure_user(readonly),
            rds.grant_read_only(grant),
        ):
            assert not again.changed and again.steps == [], again
        assert not rds.plan_ensure_database(database)

    # The project user owns the database and its extensions, and can use them.
    psql.ok(
        "project_user",
        password,
        "project_db",
        "CREATE TABLE visits (id serial PRIMARY KEY, tags hstore);"
        "INSERT INTO visits (tags) VALUES ('page=>home')",
    )
    if sb.has_postgis:
        assert psql.ok(
            "project_user", password, "project_db", "SELECT count(*) > 0 FROM spatial_ref_sys"
        ) == "t"
        # Only the table's owner may comment on it.
        psql.ok("project_user", password, "project_db", "COMMENT ON TABLE spatial_ref_sys IS 'EPSG codes'")
    # The read-only user reads a table created after the grant, and cannot write.
    assert psql.ok("project_readonly", "ro-pass-1", "project_db", "SELECT count(*) FROM visits") == "1"
    err = psql.fails("project_readonly", "ro-pass-1", "project_db", "INSERT INTO visits DEFAULT VALUES")
    assert "permission denied" in err
    # The project user cannot create databases or roles, nor reach the maintenance database's
    # schema as owner.
    assert "permission denied" in psql.fails("project_user", password, "postgres", "CREATE DATABASE sneaky")
    assert "permission denied" in psql.fails("project_user", password, "postgres", "CREATE ROLE sneaky")

    with sb.connect() as rds:
        # The project user's credentials, handed over the ways a deploy does.
        creds = rds.credentials("project_user", "project_db", password)
        assert creds.sslmode == ("verify-full" if sb.ca_cert_path else "disable")
        # psql logs in with the URL alone, and with the password file written for it.
        who = "SELECT current_user || '@' || current_database()"
        assert psql.login(creds.database_url().reveal(), who) == "project_user@project_db"
        creds.write_pgpass(tmp_path / "pgpass")
        assert (tmp_path / "pgpass").stat().st_mode & 0o777 == 0o600
        assert psql.login(sb.dsn_for("project_user", "project_db"), who, passfile=tmp_path / "pgpass") == "project_user@project_db"

        # Dump as the project user, restore into a fresh database of the same project, verify.
        archive = tmp_path / "project_db.dump"
        if sb.major_version > newest_pg_dump_major():
            with pytest.raises(rds_pg.ToolError, match="pg_dump") as e:
                rds_pg.dump(creds, archive)
            assert e.value.tool == "pg_dump" and f"or newer for server {sb.version}" in str(e.value)
        else:
            dumping = []
            dumped = rds_pg.dump(
                sb.dsn_for("project_user", "project_db"),
                archive,
                password=password,
                progress=lambda done, total, message, size: dumping.append((done, total, message, size)),
            )
            assert dumped.bytes > 0 and dumped.path == archive and dumped.format == "custom"
            assert dumping and dumping[-1][0] == dumping[-1][1] >= 1, dumping
            assert any('"public.visits"' in message for _, _, message, _ in dumping), dumping
            # A callback that takes a fourth argument gets the archive's size so far.
            sizes = [size for *_, size in dumping]
            assert sizes == sorted(sizes) and sizes[-1] == dumped.bytes == archive.stat().st_size, sizes
            rds.ensure_database(DatabaseSpec("project_copy", "project_user"))
            # The archive's extensions are not created unasked, even with master at hand.
            with pytest.raises(rds_pg.NotFound, match="hstore"):
                rds_pg.restore(creds, archive, database="project_copy", master=rds)
            with pytest.raises(rds_pg.InvalidInput, match="master"):
                rds_pg.restore(creds, archive, database="project_copy", extensions=extensions)
            # Master itself may not restore a project's archive: its content would run as master.
            with pytest.raises(rds_pg.PolicyViolation) as refused:
                rds_pg.restore(sb.master_dsn, archive, database="project_copy")
            assert "PGUSER=project_user" in refused.value.hint
            assert psql.ok("project_user", password, "project_copy", "SELECT count(*) FROM pg_extension") == "1"
            seen = []
            restored = rds_pg.restore(
                creds,
                archive,
                database="project_copy",
                master=rds,
                extensions=extensions,
                progress=lambda done, total, message: seen.append((done, total, message)),
            )
            assert restored.single_transaction and restored.warnings == []
            assert set(restored.created_extensions) == {e.value if isinstance(e, Extension) else e for e in extensions}
            # Left out: the extensions master made first (there by then), named as the command line
            # names them.
            hstore = [s for s in restored.skipped if s.entry == "EXTENSION hstore"]
            assert len(hstore) == 1 and " EXTENSION - hstore" in hstore[0].list_line, restored.skipped
            assert hstore[0].reason == "extension hstore already exists in the target"
            assert seen and seen[-1][0] == seen[-1][1] == restored.entries_restored
            assert psql.ok("project_user", password, "project_copy", "SELECT tags->'page' FROM visits") == "home"
            verifying = []
            verified = rds_pg.verify_backup(
                rds, creds, archive, progress=lambda done, total, message: verifying.append((done, total))
            )
            assert verified.verified and verified.scratch_dropped, verified.mismatches
            assert verifying and verifying[-1][0] == verifying[-1][1] == verified.restore.entries_restored
            assert [(t.table, t.source, t.restored) for t in verified.tables if t.table == "visits"] == [("visits", 1, 1)]
            # The scratch database gets the source's extensions unless told otherwise.
            with pytest.raises(rds_pg.NotFound, match="hstore"):
                rds_pg.verify_backup(rds, creds, archive, extensions=[])
            assert rds.drop_database("project_copy").changed

        # Another project's user cannot connect to this project's database.
        other = rds.ensure_user("other_user").generated_password
        err = psql.fails("other_user", other, "project_db", "SELECT 1")
        assert "permission denied for database" in err

        # Read-only access can be taken back.
        assert rds.revoke_read_only(grant).changed
        assert "permission denied" in psql.fails(
            "project_readonly", "ro-pass-1", "project_db", "SELECT count(*) FROM visits"
        )

        # Rotation: the old password stops working, the generated one works.
        rotated = rds.rotate_password("project_user")
        new_password = rotated.generated_password
        assert rotated.changed and isinstance(new_password, rds_pg.Secret)
        assert "password authentication failed" in psql.fails("project_user", password, "project_db", "SELECT 1")
        assert psql.ok("project_user", new_password, "project_db", "SELECT count(*) FROM visits") == "1"

        # Teardown: the database, then its users; again changes nothing.
        assert rds.plan_drop_database("project_db")
        assert rds.drop_database("project_db").changed
        for name in ("project_user", "project_readonly", "other_user"):
            assert rds.drop_user(name).changed
        assert not rds.drop_database("project_db").changed
        assert not rds.drop_user("project_user").changed
    err = psql.fails("project_user", new_password, "postgres", "SELECT 1")
    assert "password authentication failed" in err or "does not exist" in err
