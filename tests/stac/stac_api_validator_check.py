"""stac-api-validator (PyPI) against a running Albedo, offline.

The validator checks every Collection and Item it reads against the published STAC JSON
schemas, which it downloads from schemas.stacspec.org (and geojson.org): this machine reaches
package registries only. The same published files ship inside packages, so this wrapper
answers those URLs from them instead of the network:

- STAC 1.0.0 core (item, collection, catalog, and the basics, datetime, instrument,
  licensing and provider fragments) and the GeoJSON Feature and Geometry schemas: the
  `pystac/validation/jsonschemas/` folder of the pystac 1.10.1 wheel (PyPI), the last pystac
  that vendors the 1.0.0 schemas (the same files as the `stac-validate` crate's);
- STAC 1.1.0 core: the same folder of the pystac-core 1.15.2 wheel (some ingested items are
  1.1.0);
- the extension schemas that the items of local products declare (eo 1.1.0, projection
  1.1.0, raster 1.1.0, sar 1.0.0, sat 1.0.0) and more: `eopf/product/stac_extensions/` of
  the eopf 2.6.4 wheel (PyPI).

`cargo xtask test` downloads those wheels with `pip download`, extracts their JSON files and
passes the folder here. The files are mapped by their own `$id`, so nothing here names or
alters a schema.

Any other URL outside this machine fails as it would without a network, so a schema that is
not packaged shows up as a validator error naming it, rather than passing unchecked.

Prints the validator's report, then `stac api validator: N passed` (one per conformance
class) and exits non-zero when the validator reports an error.

Usage: python stac_api_validator_check.py STAC_ROOT_URL SCHEMA_DIR COLLECTION
"""

import io
import json
import os
import sys
import urllib.request
import urllib.response
from urllib.parse import urlparse

import requests
import requests.adapters

CONFORMANCE = ["core", "features", "item-search"]


def load_schemas(folder):
    """Every JSON schema under `folder`, by its `$id` (without a trailing `#`) and by its
    file name in the folder of that `$id` (the published STAC 1.1.0 `common.json` says
    `.../json-schema/commonjson`, while `item.json` refers to it as `common.json`)."""
    by_id, by_name = {}, {}
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                raw = f.read()
            sid = json.loads(raw).get("$id")
            if sid:
                sid = sid.rstrip("#")
                by_id[sid] = raw
                by_name[sid.rsplit("/", 1)[0] + "/" + name] = raw
    return {**by_name, **by_id}


def install_offline_schemas(schemas):
    """Answers the schema URLs from `schemas` for requests and urllib alike."""

    def lookup(url):
        return schemas.get(url.split("#")[0])

    original_send = requests.adapters.HTTPAdapter.send

    def send(self, request, *args, **kwargs):
        body = lookup(request.url)
        if body is None:
            return original_send(self, request, *args, **kwargs)
        response = requests.models.Response()
        response.status_code = 200
        response._content = body
        response.headers["Content-Type"] = "application/schema+json"
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    requests.adapters.HTTPAdapter.send = send

    original_open = urllib.request.OpenerDirector.open

    def open_(self, fullurl, data=None, *args, **kwargs):
        url = fullurl if isinstance(fullurl, str) else fullurl.full_url
        body = lookup(url)
        if body is None:
            return original_open(self, fullurl, data, *args, **kwargs)
        return urllib.response.addinfourl(
            io.BytesIO(body), {"Content-Type": "application/schema+json"}, url, 200
        )

    urllib.request.OpenerDirector.open = open_


def main():
    root, schema_dir, collection = sys.argv[1], sys.argv[2], sys.argv[3]
    if urlparse(root).hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the STAC API under test must be on this machine")
    schemas = load_schemas(schema_dir)
    for needed in [
        "https://schemas.stacspec.org/v1.0.0/item-spec/json-schema/item.json",
        "https://schemas.stacspec.org/v1.0.0/collection-spec/json-schema/collection.json",
        "https://schemas.stacspec.org/v1.0.0/catalog-spec/json-schema/catalog.json",
        "https://geojson.org/schema/Feature.json",
    ]:
        if needed not in schemas:
            sys.exit(f"{schema_dir} holds no schema with $id {needed}")
    install_offline_schemas(schemas)

    # Imported after the hooks are in place.
    from stac_api_validator.validations import QueryConfig, validate_api

    # The intersects tests need a geometry that hits the collection: the centre of the bbox
    # of its first item.
    first = requests.get(f"{root}/collections/{collection}/items", params={"limit": 1}).json()
    if not first.get("features"):
        sys.exit(f"collection {collection} has no items")
    w, s, e, n = first["features"][0]["bbox"][:4]
    point = {"type": "Point", "coordinates": [(w + e) / 2, (s + n) / 2]}

    (warnings, errors) = validate_api(
        root_url=root,
        ccs_to_validate=CONFORMANCE,
        collection=collection,
        geometry=json.dumps(point),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property=None,
        validate_pagination=True,
        query_config=QueryConfig(*([None] * 13)),
        transaction_collection=None,
        headers={},
    )
    for w in warnings:
        print(f"warning - {w}")
    for e in errors:
        print(f"ERROR - {e}")
    if errors:
        print(f"stac api validator: 0 passed, {len(list(errors))} errors")
        sys.exit(1)
    for cc in CONFORMANCE:
        print(f"ok - stac-api-validator {cc}")
    print(f"stac api validator: {len(CONFORMANCE)} passed")


if __name__ == "__main__":
    main()
