"""Upserts by ``_id`` cost the same however large the collection is (a real server uses the ``_id`` index).

A driver-level test: it runs unchanged against a real server (LEAF_MONGO_TEST_URI).
"""

from __future__ import annotations

import time

from pymongo import MongoClient, ReplaceOne

TOTAL = 50_000
BULK = 1_000


def test_50k_upserts_stay_linear(mongo_client: MongoClient, db_name: str) -> None:
    coll = mongo_client[db_name]["scale"]
    seconds = []
    for start in range(0, TOTAL, BULK):
        ops = [ReplaceOne({"_id": f"id{i:06d}"}, {"_id": f"id{i:06d}", "n": i}, upsert=True)
               for i in range(start, start + BULK)]  # fmt: skip
        t0 = time.perf_counter()
        result = coll.bulk_write(ops, ordered=False)
        seconds.append(time.perf_counter() - t0)
        assert result.upserted_count == BULK
    # Rewriting the same ids replaces them, never duplicates.
    again = coll.bulk_write([ReplaceOne({"_id": "id000007"}, {"_id": "id000007", "n": -1}, upsert=True)])
    assert again.matched_count == 1 and again.upserted_count == 0
    assert coll.count_documents({}) == TOTAL
    assert coll.find_one({"_id": "id000007"}) == {"_id": "id000007", "n": -1}
    assert [d["_id"] for d in coll.find({"_id": {"$in": ["id049999", "id000001", "nope"]}})] == ["id000001", "id049999"]
    # With a scan per upsert the last bulks (45k+ documents present) would cost ~19x the first ones.
    first, last = sorted(seconds[:5])[2], sorted(seconds[-5:])[2]
    assert last < 3 * first, (first, last)
