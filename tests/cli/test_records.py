import json
import re
from pathlib import Path

from clapper_core.records import SCHEMA, Record, Timings, validate

README = Path(__file__).resolve().parents[2] / "README.md"


def _record() -> Record:
    return Record(
        video="v.mp4", question="what?", answer="a ball", task="ask", model="m", device="cpu", precision="fp32",
        frames=2, timestamps=[0.25, 1.123456], segments=[[0, 2, 0.0, 2.0]], visual_tokens=245, duration_s=2.0,
        timings=Timings(0.1, 0.2, 0.3, 0.4), new_tokens=4, tokens_per_s=10.0,
    )


def test_round_trip_and_schema():
    line = _record().to_json()
    assert "\n" not in line
    obj = json.loads(line)
    assert validate(obj) == [] and list(obj) == list(SCHEMA)
    assert obj["timestamps"] == [0.25, 1.123]
    assert Record.from_json(line).to_json() == line


def test_failure_record_is_valid_and_one_line():
    rec = Record.failure("v.mp4", "what?", ValueError("bad\n  file"), task="caption")
    obj = json.loads(rec.to_json())
    assert validate(obj) == [] and obj["error"] == "bad file" and obj["error_type"] == "ValueError"
    assert obj["answer"] is None and not rec.ok


def test_validate_catches_problems():
    obj = json.loads(_record().to_json())
    obj["frames"] = "two"
    del obj["video"]
    obj["timings"]["decode_s"] = "slow"
    problems = validate(obj)
    assert any("'frames' should be integer" in p for p in problems)
    assert "missing field 'video'" in problems
    assert any("decode_s" in p for p in problems)


def test_readme_documents_every_field():
    text = README.read_text()
    section = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert documented == list(SCHEMA)
