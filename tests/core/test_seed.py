import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from services.core.demo import DemoCommunity, generate_community
from services.core.identity import is_valid_resident_id
from services.core.models import Checkpoint, Pass, Person, Quarantine, Site
from services.core.seed import load_demo
from tests.support.env import TEST_SECRET


def test_demo_community_is_deterministic_and_shaped_like_the_reference() -> None:
    a = generate_community(seed=1, people=500)
    b = generate_community(seed=1, people=500)
    assert a.people == b.people and a.checkpoints == b.checkpoints
    assert len(a.checkpoints) == 102
    assert {s.kind for s in a.sites} == {"residential", "industrial", "school", "commercial"}
    assert all(is_valid_resident_id(p.id_number) for p in a.people)
    assert len({p.id_number for p in a.people}) == 500


def test_seed_loads_hashes_not_raw_ids(engine: Engine, small_community: DemoCommunity) -> None:
    counts = load_demo(engine, small_community, TEST_SECRET)
    assert counts["checkpoints"] == 102
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Site)).one()[0] == 20
        assert session.exec(select(func.count()).select_from(Checkpoint)).one()[0] == 102
        people = session.exec(select(Person)).scalars().all()
        assert len(people) == 400
        raw_ids = {p.id_number for p in small_community.people}
        assert not any(p.id_hash in raw_ids or p.id_masked in raw_ids for p in people)
        assert session.exec(select(func.count()).select_from(Pass)).one()[0] == 400
        assert session.exec(select(func.count()).select_from(Quarantine)).one()[0] == 6
    with pytest.raises(RuntimeError, match="already holds"):
        load_demo(engine, small_community, TEST_SECRET)
