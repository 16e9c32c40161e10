"""tools/gold/agreement.py: kappa arithmetic, the adjudication file, event matching."""

from __future__ import annotations

import json
import math

import pytest

from tools.gold import agreement as ag


def test_kappa_textbook_value():
    # 2x2 table: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 (n = 50)
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert ag.cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_numpy_formula_matches(monkeypatch):
    # force the numpy path even where scikit-learn is installed
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    a = ["x", "x", "y", "z", "z", "y", "x", "z"]
    b = ["x", "y", "y", "z", "x", "y", "x", "z"]
    # p_o = 6/8; p_e = (3/8*3/8) + (2/8*3/8) + (3/8*2/8) = 21/64
    expected = (6 / 8 - 21 / 64) / (1 - 21 / 64)
    assert ag.cohen_kappa(a, b) == pytest.approx(expected)
    assert ag.cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert math.isnan(ag.cohen_kappa([0, 0, 0], [0, 0, 0]))


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_label_report_and_adjudication_rows(tmp_path):
    packet = tmp_path / "packet.jsonl"
    items = [{"id": f"c:t{i:03d}:s00", "text": f"sentence {i}", "context": [], "next": None} for i in range(10)]
    _write(packet, items)
    # empathy: A yes on 0-3, B yes on 0-2 and 4 -> both 3, A only 1, B only 1, neither 5
    # p_o = 0.8, p_e = 0.4*0.4 + 0.6*0.6 = 0.52, kappa = 0.28/0.48
    a_rows, b_rows = [], []
    for i, it in enumerate(items):
        la = ["empathy"] if i in (0, 1, 2, 3) else []
        lb = ["empathy"] if i in (0, 1, 2, 4) else []
        if i == 7:
            la, lb = ["closed_question"], ["open_question"]
        a_rows.append({"id": it["id"], "labels": la})
        b_rows.append({"id": it["id"], "labels": lb, "note": "unsure" if i == 4 else ""})
    _write(tmp_path / "ann" / "anna" / "labels_primock57.jsonl", a_rows)
    _write(tmp_path / "ann" / "ben" / "labels_primock57.jsonl", b_rows)
    out_dir = tmp_path / "adj"
    import io

    buf = io.StringIO()
    stats = ag.labels_report(str(tmp_path / "ann" / "anna"), str(tmp_path / "ann" / "ben"), packet_path=packet,
                             sampling_path=tmp_path / "none.jsonl", out_dir=out_dir, stream=buf)
    emp = next(s for s in stats if s.label == "empathy")
    assert (emp.both, emp.a_only, emp.b_only, emp.neither) == (3, 1, 1, 5)
    assert emp.kappa == pytest.approx(0.28 / 0.48)
    assert emp.observed == pytest.approx(0.8)
    assert emp.prevalence == pytest.approx(0.4)
    rows = [json.loads(x) for x in (out_dir / "labels_todo.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["c:t003:s00", "c:t004:s00", "c:t007:s00"]
    r4 = rows[1]
    assert r4["anna"]["labels"] == [] and r4["ben"] == {"labels": ["empathy"], "note": "unsure"}
    assert r4["differs"] == ["empathy"] and r4["item"]["text"] == "sentence 4" and r4["final"] is None
    assert rows[2]["differs"] == ["open_question", "closed_question"]
    assert "empathy" in buf.getvalue()


def test_label_file_rejects_unknown_label_and_duplicates(tmp_path):
    f = tmp_path / "x.jsonl"
    _write(f, [{"id": "a", "labels": ["empathy"]}, {"id": "b", "labels": ["kindness"]}])
    with pytest.raises(ag.AnnotationError, match="unknown label"):
        ag.load_label_file(f)
    _write(f, [{"id": "a", "labels": []}, {"id": "a", "labels": []}])
    with pytest.raises(ag.AnnotationError, match="duplicate"):
        ag.load_label_file(f)


def test_rule_warnings():
    w = ag.rule_warnings({"i": {"labels": {"complex_reflection", "teach_back"}, "note": ""}})
    assert "i: complex_reflection without reflection" in w
    assert "i: teach_back on a non-question" in w


def _visit(cid, who, interruptions=(), redirected=False, monologue=None, ice_turns=(), emergency=False):
    return {
        "schema": "edge-agent/gold-events/1",
        "consultation": cid,
        "annotator": who,
        "opening_question": {"turn": 2, "start": 5.0, "end": 8.5, "text": "How can I help?", "notes_led": False},
        "opening_statement": {"start_turn": 3, "start": 10.0, "outcome": "redirected" if redirected else "finished",
                              "end": 30.0, "end_turn": 3, "redirect_turn": 4 if redirected else None,
                              "overlap": True if redirected else None},
        "overlaps": [{"turn": 10 + k, "time": t, "patient_turn": 9 + k, "kind": "interruption", "overlap": True}
                     for k, t in enumerate(interruptions)],
        "monologues": [] if monologue is None else [{"start_turn": 50, "end_turn": 55, "start": monologue[0],
                                                     "end": monologue[1], "duration": monologue[1] - monologue[0],
                                                     "ended_by_turn": 56}],
        "ice_questions": [{"turn": t, "time": 1.0, "text": "Any ideas?", "components": ["idea"]} for t in ice_turns],
        "teach_back_requests": [],
        "safety_netting": [],
        "agenda_questions": [],
        "stacked_questions": [],
        "emergency_escalation": {"value": emergency, "turn": None, "time": None, "text": None},
        "plan_said_back": {"value": False, "turns": [], "time": None, "prompted_by_teach_back": None},
        "notes": "",
    }


def test_event_agreement(tmp_path):
    V1, V2 = "day1_consultation01", "day1_consultation02"
    a = {V1: _visit(V1, "a", interruptions=(60.0, 120.0), monologue=(300.0, 380.0), ice_turns=(20,)),
         V2: _visit(V2, "a", redirected=True, emergency=True)}
    b = {V1: _visit(V1, "b", interruptions=(60.8, 121.5), monologue=(310.0, 380.0), ice_turns=(21, 40)),
         V2: _visit(V2, "b", redirected=False)}
    for d in (a, b):
        for doc in d.values():
            ag.validate_event_file(doc, doc["consultation"])
    res, todo = ag.compare_events(a, b, ("a", "b"))
    assert res["interruptions"] == {"matched": 1, "a_only": 1, "b_only": 1, "f1": pytest.approx(0.5)}
    assert res["monologue_iou"] == pytest.approx(70 / 80)
    assert res["ice_questions"]["matched"] == 1 and res["ice_questions"]["b_only"] == 1
    assert res["redirected_agreement"] == pytest.approx(0.5)
    assert res["emergency_escalation"]["agreement"] == pytest.approx(0.5)
    aspects = sorted((r["consultation"], r["aspect"]) for r in todo)
    assert (V2, "opening_statement") in aspects and (V2, "emergency_escalation") in aspects
    assert sum(1 for r in todo if r["aspect"] == "interruption") == 2


def test_event_schema_checks():
    doc = _visit("day1_consultation01", "a", interruptions=(5.0,), monologue=(0.0, 61.0))
    ag.validate_event_file(doc, "ok")
    doc["overlaps"][0]["kind"] = "rude"
    with pytest.raises(ag.AnnotationError, match="overlaps/0/kind"):
        ag.validate_event_file(doc, "bad kind")
    doc = _visit("day1_consultation01", "a", monologue=(0.0, 50.0))
    with pytest.raises(ag.AnnotationError, match="duration"):
        ag.validate_event_file(doc, "short monologue")
    doc = _visit("day1_consultation01", "a")
    del doc["notes"]
    doc["opening_question"]["turn"] = "t002"
    with pytest.raises(ag.AnnotationError, match=r"missing 'notes'.*opening_question/turn: expected integer"):
        ag.validate_event_file(doc, "two errors")
    doc = _visit("v1", "a")
    with pytest.raises(ag.AnnotationError, match="consultation"):
        ag.validate_event_file(doc, "bad id")


# --------------------------------------------------------------------------- adjudicated gold

from tools.gold import build_gold as bg  # noqa: E402


def _gold_rows():
    text = bg.GOLD.read_text(encoding="utf-8")
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def test_gold_covers_every_packet_id_once_in_packet_order():
    packet_ids = [it["id"] for it in bg.load_packet()]
    gold = _gold_rows()
    assert [r["id"] for r in gold] == packet_ids
    assert len({r["id"] for r in gold}) == len(gold) == len(packet_ids)
    for r in gold:
        assert set(r) == {"id", "text", "labels", "source"}
        assert r["source"] in ("agreed", "adjudicated")
        assert all(x in ag.LABELS for x in r["labels"])


def test_gold_equals_annotators_where_they_agreed_and_decisions_elsewhere():
    a, b = (ag.load_label_file(ag.ANNOTATIONS / n / "labels_primock57.jsonl") for n in bg.ANNOTATORS)
    decisions = bg.load_decisions()
    gold = {r["id"]: r for r in _gold_rows()}
    n_agreed = 0
    for i, r in gold.items():
        if a[i]["labels"] == b[i]["labels"]:
            n_agreed += 1
            assert r["source"] == "agreed" and set(r["labels"]) == a[i]["labels"], i
            assert i not in decisions, i
        else:
            assert r["source"] == "adjudicated", i
            assert r["labels"] == [x for x in ag.LABELS if x in decisions[i]["final"]], i
            # adjudication decides only what differed: labels both gave are kept
            assert a[i]["labels"] & b[i]["labels"] <= set(r["labels"]), i
    assert set(decisions) == {i for i in gold if gold[i]["source"] == "adjudicated"}
    assert n_agreed == len(gold) - len(decisions)
    assert not ag.rule_warnings({i: {"labels": set(r["labels"]), "note": ""} for i, r in gold.items()})


def test_every_decision_names_a_rule():
    for row in bg.load_decisions().values():
        assert row["adjudication_note"].startswith("§"), row["id"]


def test_gold_file_is_a_deterministic_rebuild(capsys):
    assert bg.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_build_refuses_missing_or_stray_decisions():
    packet = [{"id": "x", "text": "t1"}, {"id": "y", "text": "t2"}]
    a = {"x": {"labels": {"empathy"}, "note": ""}, "y": {"labels": set(), "note": ""}}
    b = {"x": {"labels": set(), "note": ""}, "y": {"labels": set(), "note": ""}}
    with pytest.raises(ag.AnnotationError, match="no decision"):
        bg.build(packet, a, b, {})
    ok = {"x": {"id": "x", "final": [], "differs": ["empathy"], "agreed": []}}
    rows = bg.build(packet, a, b, ok)
    assert rows == [{"id": "x", "text": "t1", "labels": [], "source": "adjudicated"},
                    {"id": "y", "text": "t2", "labels": [], "source": "agreed"}]
    with pytest.raises(ag.AnnotationError, match="agree but a decision"):
        bg.build(packet, a, b, {**ok, "y": {"id": "y", "final": [], "differs": [], "agreed": []}})
    with pytest.raises(ag.AnnotationError, match="§6"):
        bg.build(packet, a, b, {"x": {**ok["x"], "final": ["summary"]}})


# --------------------------------------------------------------------------- adjudicated event gold

from tools.gold import build_event_gold as beg  # noqa: E402

EVENT_PACKETS = ag.HERE / "packets" / "events_primock57"


def _event_gold() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(beg.GOLD_DIR.glob("*.json"))}


def test_event_gold_has_all_57_visits_and_validates():
    visits = sorted(p.stem for p in EVENT_PACKETS.glob("*.txt"))
    assert len(visits) == 57
    gold = _event_gold()
    assert sorted(gold) == visits
    for cid, doc in gold.items():
        ag.validate_event_file(doc, cid)  # raises on any schema problem
        assert doc["consultation"] == cid and doc["annotator"] == "gold"


def test_event_gold_contains_every_agreed_event():
    a, b = beg.load_annotations()
    gold = _event_gold()
    n = 0
    for cid in sorted(a):
        x, y, g = a[cid], b[cid], gold[cid]
        qa, qb, qg = x["opening_question"], y["opening_question"], g["opening_question"]
        if qa is None and qb is None:
            assert qg is None, cid
        elif qa and qb and abs(qa["end"] - qb["end"]) <= 2.0:
            assert qg and abs(qg["end"] - qa["end"]) <= 2.0 and abs(qg["end"] - qb["end"]) <= 2.0, cid
            n += 1
        sa, sb, sg = x["opening_statement"], y["opening_statement"], g["opening_statement"]
        if sa and sb and abs(sa["end"] - sb["end"]) <= 2.0 and sa["outcome"] == sb["outcome"]:
            assert sg and sg["outcome"] == sa["outcome"], cid
            assert abs(sg["end"] - sa["end"]) <= 2.0 and abs(sg["end"] - sb["end"]) <= 2.0, cid
            n += 1
        # overlaps both recorded with the same kind (interruptions matched within 1 s included)
        gov = {(o["turn"], o["time"], o["kind"]) for o in g["overlaps"]}
        ox, oy = x["overlaps"], y["overlaps"]
        for i, j in ag.match_times([o["time"] for o in ox], [o["time"] for o in oy], 1.0):
            if ox[i]["kind"] == oy[j]["kind"]:
                assert (ox[i]["turn"], ox[i]["time"], ox[i]["kind"]) in gov, (cid, ox[i])
                n += 1
        if x["monologues"] == y["monologues"]:
            assert g["monologues"] == x["monologues"], cid
            n += len(x["monologues"])
        for key in ag.UTTERANCE_LISTS:
            la, lb, lg = x[key], y[key], g[key]
            for i, j in ag.match_turns([e["turn"] for e in la], [e["turn"] for e in lb]):
                assert any(abs(e["turn"] - la[i]["turn"]) <= 1 and abs(e["turn"] - lb[j]["turn"]) <= 1 for e in lg), \
                    (cid, key, la[i]["turn"])
                n += 1
        for key in ("emergency_escalation", "plan_said_back"):
            if bool(x[key]["value"]) == bool(y[key]["value"]):
                assert bool(g[key]["value"]) == bool(x[key]["value"]), (cid, key)
                n += 1
    assert n > 1500  # 57 visits: ~1500 agreed overlaps plus utterances and flags


def test_event_decisions_cover_the_todo_rows_and_name_a_rule():
    todo = [json.loads(x) for x in (ag.ADJUDICATION / "events_todo.jsonl").read_text(encoding="utf-8").splitlines() if x]
    final = [json.loads(x) for x in beg.DECISIONS.read_text(encoding="utf-8").splitlines() if x]
    assert len(final) == len(todo) == 62
    assert sorted(beg._key(r) for r in final) == sorted(beg._key(r) for r in todo)
    unrouted = [json.loads(x) for x in beg.UNROUTED.read_text(encoding="utf-8").splitlines() if x]
    for r in final + unrouted:
        assert "final" in r and r["adjudication_note"].startswith("§"), (r["consultation"], r["aspect"])
        assert isinstance(r["guide_gap"], bool)


def test_event_gold_is_a_deterministic_rebuild(capsys):
    assert beg.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_event_build_refuses_missing_or_stray_decisions():
    a, b = beg.load_annotations()
    final = beg.load_decisions(beg.DECISIONS)
    unrouted = beg.load_decisions(beg.UNROUTED)
    with pytest.raises(ag.AnnotationError, match="no decision"):
        beg.build(a, b, {}, unrouted)
    stray = dict(final)
    row = {"consultation": "day1_consultation01", "aspect": "interruption", "annotator-a": None,
           "annotator-b": {"turn": 1, "time": 1.0}, "final": None, "adjudication_note": "§x"}
    stray[beg._key(row)] = row
    with pytest.raises(ag.AnnotationError, match="matches no current"):
        beg.build(a, b, stray, unrouted)
