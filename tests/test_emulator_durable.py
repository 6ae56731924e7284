"""The emulator's durable storage hook: what every kind of write leaves on disk is what a restart loads.

Each test writes through pymongo to ``MongoEmulator(data_path=...)``, stops it (or abandons it without a
clean close, as a crash would), starts a new one on the same folder and compares.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient, ReturnDocument
from pymongo.operations import SearchIndexModel

from leaf_mongo.testing import MongoEmulator, wait_for_search_index

VECTOR_INDEX = {"fields": [{"type": "vector", "path": "v", "numDimensions": 2, "similarity": "euclidean"}]}


def _snapshot(client: MongoClient) -> dict[str, object]:
    out: dict[str, object] = {}
    for db in client.list_database_names():
        for name in client[db].list_collection_names():
            coll = client[db][name]
            out[f"{db}.{name}"] = (
                list(coll.find()),
                sorted((k, v.get("unique", False)) for k, v in coll.index_information().items()),
                sorted((i["name"], i["type"], repr(i["latestDefinition"])) for i in coll.list_search_indexes()),
            )
    return out


@pytest.mark.parametrize("clean", [True, False])
def test_every_write_kind_survives_a_restart(tmp_path: Path, clean: bool) -> None:
    emu = MongoEmulator(data_path=tmp_path).start()
    client: MongoClient = MongoClient(emu.uri)
    a, b = client.app.a, client.app.b
    a.insert_many([{"_id": i, "n": i, "v": [float(i), 1.0]} for i in range(20)] + [{"_id": 2.5, "n": -1}])
    a.update_one({"_id": 1.0}, {"$set": {"n": 100}})  # 1.0 and 1 are one _id
    a.update_many({"n": {"$gte": 15}}, {"$inc": {"n": 1000}})
    a.update_one({"_id": "up"}, {"$setOnInsert": {"n": 700}}, upsert=True)
    a.replace_one({"_id": 3}, {"n": 33})
    a.delete_one({"_id": 4})
    a.delete_many({"n": {"$lt": 2}})
    a.find_one_and_update({"n": {"$gte": 5}}, {"$set": {"first": True}}, sort=[("n", -1)],
                          return_document=ReturnDocument.AFTER)  # fmt: skip
    a.find_one_and_delete({"_id": 6})
    a.create_index("n", unique=True)
    a.create_index("gone")
    a.drop_index("gone_1")
    a.create_search_index(SearchIndexModel(VECTOR_INDEX, name="vi", type="vectorSearch"))
    a.create_search_index(SearchIndexModel({"mappings": {"dynamic": True}}, name="tmp"))
    a.drop_search_index("tmp")
    wait_for_search_index(a, "vi", 5)
    a.update_search_index("vi", {"fields": [*VECTOR_INDEX["fields"], {"type": "filter", "path": "n"}]})
    b.insert_one({"_id": "x"})
    a.aggregate([{"$match": {"n": {"$gt": 10}}}, {"$out": "c"}])
    client.app.create_collection("empty")
    client.gone.g.insert_one({"_id": 1})
    client.drop_database("gone")
    b.drop()
    before = _snapshot(client)
    search = [{"$vectorSearch": {"index": "vi", "path": "v", "queryVector": [9.0, 1.0], "limit": 3, "exact": True}},
              {"$project": {"_id": 1}}]  # fmt: skip
    hits = list(a.aggregate(search))
    client.close()
    if clean:
        emu.stop()
    else:
        emu._server.stop()  # no close: the store is left as a killed process leaves it (committed per command)
    again = MongoEmulator(data_path=tmp_path).start()
    try:
        client = MongoClient(again.uri)
        assert _snapshot(client) == before
        assert "b" not in client.app.list_collection_names() and "gone" not in client.list_database_names()
        assert list(client.app.a.aggregate(search)) == hits
        client.close()
    finally:
        again.stop()
        if not clean:
            emu.backend.close()


def test_without_a_data_folder_nothing_touches_the_disk(tmp_path: Path) -> None:
    with MongoEmulator() as emu:
        assert emu.backend._storage is None
        MongoClient(emu.uri).app.a.insert_one({"_id": 1})
    assert not any(tmp_path.iterdir())


def test_a_retried_write_after_a_restart_gets_its_first_reply(tmp_path: Path) -> None:
    """A driver that lost the reply when the server died retries with the same lsid + txnNumber: the restarted
    store answers with the reply it committed beside the write, as mongod's transaction table does."""
    first = MongoEmulator(data_path=tmp_path)
    lsid = {"id": "session-1"}
    cmd = {"insert": "a", "documents": [{"_id": 1}], "lsid": lsid, "txnNumber": 7}
    assert first.backend.execute("app", dict(cmd))["n"] == 1
    first.stop()
    again = MongoEmulator(data_path=tmp_path)
    try:
        reply = again.backend.execute("app", dict(cmd))
        assert reply["ok"] == 1 and reply["n"] == 1 and "writeErrors" not in reply
        assert again.backend.execute("app", {**cmd, "txnNumber": 8})["writeErrors"][0]["code"] == 11000
    finally:
        again.stop()
