"""Make data/demo/multilingual/: a small synthetic shop whose catalog is in Arabic and English.

Two departments, jewellery and car parts, with titles in Arabic or English (some items in each language);
shoppers stay in one department. With only the titles to go on (no ids), a model must read both languages to
keep a buyer of gold rings among the jewellery: the test in tests/features/test_multilingual.py, and the demo
config configs/multilingual.yaml.

Usage: python benchmarks/make_multilingual_sample.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "demo" / "multilingual"
SEED = 7
SHOPPERS_PER_DEPARTMENT = 60
START = pd.Timestamp("2025-01-01", tz="UTC")

JEWELLERY = [
    "خاتم ذهب عيار 21", "خاتم ذهب أبيض", "خاتم فضة", "خاتم ألماس", "دبلة زواج ذهب", "قلادة ذهبية",
    "قلادة لؤلؤ", "سلسلة ذهب", "سوار ذهب", "أساور فضية", "أقراط ذهبية", "حلق فضة", "طقم مجوهرات ذهب",
    "Gold ring 18k", "Silver necklace", "Diamond earrings", "Pearl bracelet", "Gold chain necklace",
    "Rose gold wedding band", "Sapphire pendant",
]
CAR_PARTS = [
    "زيت محرك", "زيت محرك صناعي 5W-30", "فلتر زيت", "فلتر هواء", "فحمات فرامل", "إطار سيارة",
    "بطارية سيارة", "شمعات احتراق", "مساحات زجاج", "سائل تبريد المحرك", "مصباح أمامي للسيارة", "حزام المروحة",
    "زيت ناقل الحركة", "Engine oil 10W-40", "Brake discs", "Car battery 12V", "Spark plug set",
    "Windscreen wipers", "Radiator coolant", "Air filter for petrol engines",
]


def make_sample(out: Path, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write items.csv and events.csv into `out` and return them."""
    rng = np.random.default_rng(seed)
    titles = JEWELLERY + CAR_PARTS
    items = pd.DataFrame({"sku": [f"J{i:02d}" for i in range(len(JEWELLERY))] + [f"C{i:02d}" for i in
                                                                               range(len(CAR_PARTS))],
                          "title": titles,
                          "department": ["jewellery"] * len(JEWELLERY) + ["car parts"] * len(CAR_PARTS)})
    rows = []
    for department, prefix, size in (("jewellery", "J", len(JEWELLERY)), ("car", "C", len(CAR_PARTS))):
        for shopper in range(SHOPPERS_PER_DEPARTMENT):
            picks = rng.choice(size, int(rng.integers(4, 9)), replace=False)
            for step, item in enumerate(picks):
                when = START + pd.Timedelta(days=int(shopper), hours=int(step))
                rows.append({"customer": f"{department}-{shopper}", "sku": f"{prefix}{item:02d}",
                             "time": when.isoformat()})
    events = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    items.to_csv(out / "items.csv", index=False)
    events.to_csv(out / "events.csv", index=False)
    return items, events


if __name__ == "__main__":
    make_sample(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
