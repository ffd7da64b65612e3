"""Moving US, CA, AU and NZ from `sg` to `us` (the 2020 deal) with `do_plan` and `do_run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from carveout_seed import Seeded, policy
from helpers import row_count
from reelm.audit.log import region_log
from reelm.carveout import models as m
from reelm.carveout.manifest import compute_manifests
from reelm.carveout.plan import do_plan
from reelm.carveout.report import ReportInvalid, operator_signer, verify_report
from reelm.carveout.service import RunOptions, do_run
from reelm.carveout.verify import do_check
from reelm.errors import InvalidInput, NotFound
from reelm.media.models import PublishedVideo
from reelm.residency.models import DirectoryEntry, PublicProfile
from reelm.residency.policy import PolicyError, load_policy
from reelm.residency.service import active_policy_hash

FAST = RunOptions(batch=2, drain=0)


def homes(seeded: Seeded) -> dict[str, str]:
    with seeded.platform.global_store.session() as g:
        return dict(g.execute(select(DirectoryEntry.user_id, DirectoryEntry.home_region)).all())


def test_plan_lists_the_jurisdictions_that_move_with_their_data(seeded: Seeded) -> None:
    plan = do_plan(seeded.platform, seeded.demo)
    got = {(g.jurisdiction, g.from_region, g.to_region): g.users for g in plan.groups}
    assert got == {("AU", "sg", "us"): 1, ("CA", "sg", "us"): 1, ("NZ", "sg", "us"): 1,
                   ("US", "sg", "us"): 3}  # fmt: skip
    movers = {p.user_id for p in seeded.movers()}
    assert set(plan.moves) == movers
    rows = sum(
        row_count(seeded.platform, "sg", t.name, u)
        for u in movers
        for t in __import__("reelm.db", fromlist=["RegionModel"]).RegionModel.metadata.sorted_tables
    )
    assert plan.rows == rows
    assert plan.blobs == 4 * sum(len(p.videos) for p in seeded.movers())  # upload + 3 files
    assert plan.bytes > 0
    assert plan.previous_hash == policy(seeded.settings, "before-2020").content_hash
    # nothing changed
    assert set(homes(seeded).values()) == {"sg"}


def test_plan_refuses_a_region_this_deployment_does_not_run(seeded: Seeded, tmp_path: Path) -> None:
    text = seeded.demo.text.replace("[regions.us]", "[regions.eu]").replace("us = [", "eu = [")
    path = tmp_path / "eu.toml"
    path.write_text(text)
    (tmp_path / "staff-access.cedar").write_text(
        (Path(seeded.demo.source).parent / "staff-access.cedar").read_text()
    )
    with pytest.raises(InvalidInput, match="region 'eu' does not exist in this deployment"):
        do_plan(seeded.platform, load_policy(path, data_dir=seeded.settings.data_dir))


def test_plan_refuses_a_policy_that_breaks_a_rule(seeded: Seeded, tmp_path: Path) -> None:
    text = seeded.demo.text.replace('location = "US"', 'location = "CN"', 1)
    path = tmp_path / "cn.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match="never_store_in"):
        load_policy(path, data_dir=seeded.settings.data_dir)


def test_run_moves_every_user_of_the_moving_jurisdictions_and_leaves_nothing(
    seeded: Seeded,
) -> None:
    platform, settings = seeded.platform, seeded.settings
    before = {p.user_id: compute_manifests(platform.regions["sg"], [p.user_id])[p.user_id]
              for p in seeded.people.values()}  # fmt: skip
    result = do_run(platform, settings, policy=seeded.demo, options=FAST)
    assert result.moved == 6
    assert not result.failed
    where = homes(seeded)
    for p in seeded.people.values():
        want = "us" if p.moves else "sg"
        assert where[p.user_id] == want, p.handle
        assert row_count(platform, want, "accounts", p.user_id) == 1
        assert row_count(platform, "sg" if want == "us" else "us", "accounts", p.user_id) == 0
        # the same data, byte for byte, in its new home: the manifest is unchanged
        assert (
            compute_manifests(platform.regions[want], [p.user_id])[p.user_id] == before[p.user_id]
        )
    check = do_check(platform, settings, run_id=result.run_id)
    assert check.ok, check.problems()
    assert check.manifests_checked == 6
    # keys: only in the home ring; the old token still works and names the new home
    for p in seeded.movers():
        assert platform.regions["us"].keys.has_data_key(p.user_id)
        assert not platform.regions["sg"].keys.has_data_key(p.user_id)
    # PublicCatalog repointed
    with platform.global_store.session() as g:
        for p in seeded.people.values():
            region = "us" if p.moves else "sg"
            assert g.get(PublicProfile, p.user_id).region == region  # type: ignore[union-attr]
            for v in p.videos:
                assert g.get(PublishedVideo, v).region == region  # type: ignore[union-attr]
    assert active_policy_hash(platform) == seeded.demo.content_hash
    assert platform.policy.content_hash == seeded.demo.content_hash
    assert settings.resolved_policy_file.read_text() == seeded.demo.text


def test_both_audit_logs_record_each_move_with_the_same_manifest_root(seeded: Seeded) -> None:
    platform, settings = seeded.platform, seeded.settings
    result = do_run(platform, settings, policy=seeded.demo, options=FAST)
    sg, us = (
        region_log(settings, platform.regions["sg"]),
        region_log(settings, platform.regions["us"]),
    )

    def entries(log: object) -> list[dict[str, object]]:
        page = log.entries_page(0)  # type: ignore[attr-defined]
        return [e.entry for e in page.entries]

    out = [e for e in entries(sg) if e["kind"] == "carve_out_move"]
    into = [e for e in entries(us) if e["kind"] == "carve_out_move"]
    shredded = [e for e in entries(sg) if e["kind"] == "key_destruction"]
    assert len(out) == len(into) == len(shredded) == 6
    assert {e["direction"] for e in out} == {"out"}
    assert {e["direction"] for e in into} == {"in"}
    with platform.global_store.session() as g:
        roots = dict(
            g.execute(
                select(m.CarveOutUser.user_id, m.CarveOutUser.manifest_root).where(
                    m.CarveOutUser.run_id == result.run_id
                )
            ).all()
        )
    for p in seeded.movers():
        o = next(e for e in out if e["subject"] == sg.pseudonym(p.user_id))
        i = next(e for e in into if e["subject"] == us.pseudonym(p.user_id))
        assert o["manifest_root"] == i["manifest_root"] == roots[p.user_id]
        assert o["policy_hash"] == seeded.demo.content_hash
        assert o["run_id"] == result.run_id
    assert all(e["reason"] == "carve_out" for e in shredded)


def test_signed_report_verifies_offline_and_any_change_is_caught(seeded: Seeded) -> None:
    result = do_run(seeded.platform, seeded.settings, policy=seeded.demo, options=FAST)
    assert result.report is not None
    key = operator_signer(seeded.settings).verifier
    checked = verify_report(result.report, key)
    body = checked.report
    assert body["moved"] == 6
    assert body["complete"] is True
    assert body["policy_before"] == policy(seeded.settings, "before-2020").content_hash
    assert body["policy_after"] == seeded.demo.content_hash
    assert body["regions"]["us"]["users"] == 6
    assert body["regions"]["sg"]["users"] == 3
    # a changed count, a dropped manifest, another signer: all refused
    tampered = result.report.replace('"moved":6', '"moved":5')
    with pytest.raises(ReportInvalid, match="does not verify"):
        verify_report(tampered, key)
    from reelm.audit.checkpoint import Signer

    with pytest.raises(ReportInvalid, match="not signed by"):
        verify_report(result.report, Signer.generate(key.name).verifier)
    from reelm.carveout.report import REPORT_FORMAT, sign_document

    forged = dict(body, manifests=body["manifests"][1:])
    with pytest.raises(ReportInvalid, match="manifest_root"):
        verify_report(sign_document(REPORT_FORMAT, forged, operator_signer(seeded.settings)), key)


def test_run_without_policy_needs_one_in_progress(seeded: Seeded) -> None:
    with pytest.raises(NotFound, match="No carve-out is in progress"):
        do_run(seeded.platform, seeded.settings)
    first = do_run(seeded.platform, seeded.settings, policy=seeded.demo, options=FAST)
    again = do_run(seeded.platform, seeded.settings, policy=seeded.demo, options=FAST)
    assert first.moved == 6
    assert again.moved == 0
    with seeded.platform.global_store.session() as g:
        states = list(g.scalars(select(m.CarveOutRun.state)))
    assert states == ["done", "done"]
    assert json.loads  # (kept for symmetry with the report tests)


def test_a_copy_that_does_not_verify_leaves_the_user_where_they_were(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manifests on both sides catch a lossy copy: copied again once, then given back."""
    import reelm.carveout.move as move
    from reelm.carveout.copy import copy_rows

    ava = seeded.people["ava_us"]

    def lossy(source: object, target: object, owners: list[str], **kw: object) -> int:
        n = copy_rows(source, target, owners, **kw)  # type: ignore[arg-type]
        if ava.user_id in owners:  # one session of ava's goes missing on the way
            with (
                seeded.platform.regions["us"].unchecked_connection(
                    reason="test: write below the hooks"
                ) as conn,
                conn.begin(),
            ):
                conn.exec_driver_sql(
                    "DELETE FROM sessions WHERE id = (SELECT min(id) FROM sessions "
                    "WHERE owner_id = ?)" if conn.dialect.name == "sqlite" else
                    "DELETE FROM sessions WHERE id = (SELECT min(id) FROM sessions "
                    "WHERE owner_id = %s)",
                    (ava.user_id,),
                )  # fmt: skip
        return n

    monkeypatch.setattr(move, "copy_rows", lossy)
    result = do_run(seeded.platform, seeded.settings, policy=seeded.demo, options=FAST)
    assert result.failed == [ava.user_id]
    assert result.moved == 5
    where = homes(seeded)
    assert where[ava.user_id] == "sg"
    assert row_count(seeded.platform, "sg", "accounts", ava.user_id) == 1
    assert row_count(seeded.platform, "us", "accounts", ava.user_id) == 0
    assert not seeded.platform.regions["us"].keys.has_data_key(ava.user_id)
    assert not list(seeded.platform.regions["us"].blobs.keys(f"{ava.user_id}/"))
    with seeded.platform.global_store.session() as g:
        run = g.get(m.CarveOutRun, result.run_id)
        assert run is not None
        assert run.state == "failed"
        state = g.get(DirectoryEntry, ava.user_id)
        assert state is not None
        assert state.state == "active"
    # the policy is not activated while someone could not be moved
    assert active_policy_hash(seeded.platform) != seeded.demo.content_hash
