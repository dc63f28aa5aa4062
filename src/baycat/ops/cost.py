"""What a run or a backup costs on S3: a documented price table and two estimates.

The built-in table is AWS's S3 list prices for us-east-1 (USD, checked 2025; README
"Cost model"). Requests are priced per 1,000 in two tiers, as AWS bills them: PUT, COPY,
POST and LIST in the "write" tier; GET, HEAD and the rest in the "read" tier; DELETE is
free. LIST is always billed at the STANDARD rate. Storage is per GiB-month (AWS's "GB" is
2^30 bytes). Not modelled: minimum storage durations and object sizes of the IA and
archive classes, retrieval fees, data transfer out, and old manifest packs (never
garbage-collected; ~20 bytes per changed entry).

Override any number with a JSON file (`--price-file`, or `BAYCAT_PRICE_FILE`)::

    {"name": "Wasabi", "classes": {"STANDARD": {"storage_gb_month": 0.0069,
                                               "write_per_1000": 0, "read_per_1000": 0}}}

Classes and fields left out keep their built-in values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from baycat.errors import UsageError

GiB = 1 << 30
WRITE_TIER = frozenset({"PUT", "COPY", "POST", "LIST"})
FREE = frozenset({"DELETE"})


@dataclass(frozen=True, slots=True)
class ClassPrice:
    """Prices of one storage class, in USD."""

    storage_gb_month: float
    write_per_1000: float  # PUT, COPY, POST, LIST
    read_per_1000: float  # GET, HEAD, ...


STORAGE_CLASSES: dict[str, ClassPrice] = {
    "STANDARD": ClassPrice(0.023, 0.005, 0.0004),
    "INTELLIGENT_TIERING": ClassPrice(0.023, 0.005, 0.0004),
    "STANDARD_IA": ClassPrice(0.0125, 0.01, 0.001),
    "ONEZONE_IA": ClassPrice(0.01, 0.01, 0.001),
    "GLACIER_IR": ClassPrice(0.004, 0.02, 0.01),
    "GLACIER": ClassPrice(0.0036, 0.03, 0.0004),
    "DEEP_ARCHIVE": ClassPrice(0.00099, 0.05, 0.0004),
    "REDUCED_REDUNDANCY": ClassPrice(0.024, 0.005, 0.0004),
}


@dataclass(frozen=True, slots=True)
class PriceTable:
    name: str = "AWS S3 list prices, us-east-1"
    classes: Mapping[str, ClassPrice] = field(default_factory=lambda: dict(STORAGE_CLASSES))

    def price(self, storage_class: str) -> ClassPrice:
        try:
            return self.classes[storage_class]
        except KeyError:
            raise UsageError(f"no prices for storage class {storage_class!r} "
                             f"(known: {', '.join(sorted(self.classes))})") from None

    def request_cost(self, requests: Mapping[str, int], storage_class: str = "STANDARD") -> float:
        """USD for these requests (by type, as the client sent them)."""
        price = self.price(storage_class)
        standard = self.classes.get("STANDARD", price)
        total = 0.0
        for kind, count in requests.items():
            if kind in FREE:
                continue
            if kind == "LIST":
                total += count * standard.write_per_1000 / 1000
            elif kind in WRITE_TIER:
                total += count * price.write_per_1000 / 1000
            else:
                total += count * price.read_per_1000 / 1000
        return total


def load_prices(path: Path | None) -> PriceTable:
    """The built-in table, with the overrides of the JSON file at `path` (if any)."""
    table = PriceTable()
    if path is None:
        return table
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read price file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"price file {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes", {}), dict):
        raise UsageError(f"price file {path}: want {{\"classes\": {{CLASS: {{...}}}}}}")
    classes = dict(table.classes)
    for name, fields in doc.get("classes", {}).items():
        base = classes.get(name, ClassPrice(0.0, 0.0, 0.0))
        try:
            classes[name] = replace(base, **{k: float(v) for k, v in fields.items()})
        except (TypeError, ValueError, AttributeError):
            raise UsageError(f"price file {path}: bad prices for {name!r} (fields: "
                             "storage_gb_month, write_per_1000, read_per_1000)") from None
    return PriceTable(str(doc.get("name", f"{table.name}, overridden by {path.name}")), classes)


@dataclass(frozen=True, slots=True)
class TreeCostEstimate:
    """`baycat manifest estimate-cost`: what keeping a tree backed up costs."""

    storage_class: str
    price_table: str
    files: int
    bytes: int
    syncs_per_month: int
    change_rate: float  # fraction of files whose content changes between two syncs
    initial_requests: int  # first full upload
    initial_usd: float
    monthly_requests: int
    monthly_request_usd: float
    monthly_storage_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.monthly_request_usd + self.monthly_storage_usd

    def to_json(self) -> dict[str, Any]:
        return {"storage_class": self.storage_class, "price_table": self.price_table,
                "files": self.files, "bytes": self.bytes,
                "syncs_per_month": self.syncs_per_month, "change_rate": self.change_rate,
                "initial_requests": self.initial_requests, "initial_usd": self.initial_usd,
                "monthly_requests": self.monthly_requests,
                "monthly_request_usd": self.monthly_request_usd,
                "monthly_storage_usd": self.monthly_storage_usd,
                "monthly_usd": self.monthly_usd}


def estimate_tree(files: int, total_bytes: int, upload_requests: int, *, table: PriceTable,
                  storage_class: str = "STANDARD", syncs_per_month: int = 30,
                  change_rate: float = 0.01) -> TreeCostEstimate:
    """Monthly cost of a tree of `files` files and `total_bytes` bytes, backed up
    `syncs_per_month` times, a `change_rate` fraction of files changing between syncs.

    `upload_requests` is what uploading every file once takes (one PUT per small file,
    create + parts + complete per large one). A sync is baycat's request budget: one GET
    of the root, then per changed file its share of the upload requests, plus one pack
    PUT and one root PUT when anything changed.
    """
    if not 0 <= change_rate <= 1:
        raise UsageError("--change-rate must be between 0 and 1")
    if syncs_per_month < 0:
        raise UsageError("--syncs-per-month must be >= 0")
    price = table.price(storage_class)
    per_file = upload_requests / files if files else 1.0
    changed = math.ceil(files * change_rate)
    writes_per_sync = changed * per_file + (2 if changed else 0)
    initial = upload_requests + 2
    initial_usd = table.request_cost({"GET": 1, "PUT": initial}, storage_class)
    monthly_writes = round(syncs_per_month * writes_per_sync)
    monthly_usd = table.request_cost({"GET": syncs_per_month, "PUT": monthly_writes},
                                     storage_class)
    return TreeCostEstimate(
        storage_class=storage_class, price_table=table.name, files=files, bytes=total_bytes,
        syncs_per_month=syncs_per_month, change_rate=change_rate,
        initial_requests=initial + 1, initial_usd=initial_usd,
        monthly_requests=syncs_per_month + monthly_writes, monthly_request_usd=monthly_usd,
        monthly_storage_usd=total_bytes / GiB * price.storage_gb_month)
