"""pystac-client, a real STAC client from PyPI, searching a running Albedo (`cargo xtask test`
runs this against the stack it starts, with the bundled assets ingested).

Every expected result is computed here by brute force from the same STAC files in assets/stac,
independently of the server. Prints `stac client checks: N passed` and exits non-zero on any
failure.

Usage: python pystac_client_check.py STAC_ROOT_URL ASSETS_DIR
"""

import glob
import json
import os
import sys
from datetime import datetime, timezone

from pystac_client import Client


def load_items(assets):
    items = {}
    for path in sorted(glob.glob(os.path.join(assets, "stac", "**", "*"), recursive=True)):
        if path.endswith(".ndjson"):
            docs = [json.loads(line) for line in open(path) if line.strip()]
        elif path.endswith(".json"):
            doc = json.load(open(path))
            docs = doc.get("features", []) if doc.get("type") == "FeatureCollection" else [doc]
        else:
            continue
        for d in docs:
            if d.get("type") == "Feature":
                items[d["id"]] = d
    return list(items.values())


def when(item):
    p = item["properties"]
    s = p.get("datetime") or p.get("start_datetime")
    return datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T"))


def bbox_hits(item, q):
    b = item["bbox"]
    w, s, e, n = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
    return not (e < q[0] or w > q[2] or n < q[1] or s > q[3])


def main():
    root, assets = sys.argv[1], sys.argv[2]
    items = load_items(assets)
    client = Client.open(root)
    passed = 0

    def check(label, expected_ids, **kw):
        nonlocal passed
        for method in ("GET", "POST"):
            search = client.search(method=method, **kw)
            got = [i.id for i in search.items()]
            assert len(got) == len(set(got)), f"{label} {method}: duplicate items across pages"
            assert set(got) == set(expected_ids), (
                f"{label} {method}: got {len(got)} items, expected {len(expected_ids)}; "
                f"missing {sorted(set(expected_ids) - set(got))[:3]}, "
                f"extra {sorted(set(got) - set(expected_ids))[:3]}")
            assert search.matched() in (None, len(expected_ids)), f"{label}: numberMatched"
        print(f"ok - {label}: {len(expected_ids)} items, GET and POST, paged")
        passed += 1

    assert client.conforms_to("ITEM_SEARCH"), "the landing page must declare item-search"

    q = [-105.5, 39.5, -104.5, 40.5]
    lo = datetime(2024, 4, 1, tzinfo=timezone.utc)
    hi = datetime(2024, 6, 30, 23, 59, 59, tzinfo=timezone.utc)
    expected = [i["id"] for i in items
                if bbox_hits(i, q) and lo <= when(i) <= hi
                and i["properties"].get("eo:cloud_cover") is not None
                and i["properties"]["eo:cloud_cover"] < 20]
    assert expected, "the query must match something to mean anything"
    check("bbox + datetime + eo:cloud_cover < 20", expected, bbox=q,
          datetime="2024-04-01T00:00:00Z/2024-06-30T23:59:59Z",
          query={"eo:cloud_cover": {"lt": 20}}, limit=5)

    col = "sentinel-2-l2a"
    expected = [i["id"] for i in items if i.get("collection") == col]
    check(f"collection {col}", expected, collections=[col], limit=37)

    # From 2019 on: the bundled local Sentinel-1 products (2015, 2018) are not STAC files.
    since = datetime(2019, 1, 1, tzinfo=timezone.utc)
    expected = [i["id"] for i in items
                if "VH" in i["properties"].get("sar:polarizations", []) and when(i) >= since]
    assert expected
    check("sar:polarizations contains VH, since 2019", expected,
          datetime="2019-01-01T00:00:00Z/..", query={"sar:polarizations": {"in": ["VH"]}})

    sorted_search = client.search(collections=[col], sortby="-properties.eo:cloud_cover",
                                  max_items=30, limit=10)
    cc = [i.properties["eo:cloud_cover"] for i in sorted_search.items()]
    assert cc == sorted(cc, reverse=True) and len(cc) == 30, cc
    print("ok - sortby -eo:cloud_cover orders 30 items over 3 pages")
    passed += 1

    print(f"stac client checks: {passed} passed")


if __name__ == "__main__":
    main()
