#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Expected measure values for the scorecard fixture, worked out independently of the gateway.

Reads records.json (the generator's own ground truth: each patient's demographics, attribution
memberships, consults and screenings) and writes expected.json: per evaluation (everyone, and
each practice as the subject) and per measure group, the population counts, the score, and the
same per stratum (race, ethnicity, payer, line of business), with the cell suppression of
population reports. It reads nothing the gateway produced. The definitions it follows are those
the Measures declare in prose (fhir_profiles/alignment/package/Measure-*.json, docs/SCORECARD.md):
  * the population: patients with an attribution membership overlapping the period (of the
    subject's practice when there is one; the period and memberships are inclusive dates);
  * strata: race codes (each code of a multi-race patient; none sent: UNK), the ethnicity code
    (none: UNK), the payers and lines of business of the patient's coverages overlapping the
    period (none: UNK);
  * consults requested in the period by the local date of the request; answered: a response
    exists; closed: a closed event exists; hours from request to answer, median (mean of the two
    middle values for an even count) and 90th percentile (nearest rank: the ceil(0.9 n)-th);
  * screened: a screening in the period; positive per domain: among the screened;
  * high or complex risk: a risk-tier assessment of that tier dated in the period; among them,
    those with a care plan whose (last) status is active; BHI: an active plan of that category;
  * suppression: a cell any of whose counts is 1..10 shows no counts and no score.
Python 3 standard library only. Run: python3 expected.py
"""
import datetime
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
records = json.load(open(os.path.join(HERE, "records.json")))
P_START, P_END = records["period"]
SUPPRESS_BELOW = 11
DOMAINS = ["food-insecurity", "housing-instability", "transportation-insecurity", "utility-insecurity", "interpersonal-safety"]


def overlaps(start, end):
    return start <= P_END and (end is None or end >= P_START)


def in_period(stamp):
    return P_START <= stamp[:10] <= P_END


def hours(a, b):
    fmt = "%Y-%m-%dT%H:%M:%S%z"
    return (datetime.datetime.strptime(b, fmt) - datetime.datetime.strptime(a, fmt)).total_seconds() / 3600.0


def strata_values(p):
    covered = [m for m in p["memberships"] if overlaps(m["start"], m["end"])]
    return {
        "race": sorted(set(p["race"])) or ["UNK"],
        "ethnicity": [p["ethnicity"]] if p["ethnicity"] else ["UNK"],
        "payer": sorted({m["payer"] for m in covered}) or ["UNK"],
        "line-of-business": sorted({m["lob"] for m in covered}) or ["UNK"],
    }


def patient_cells(p):
    """Per measure group: this patient's counts and observations."""
    requested = [c for c in p["consults"] if in_period(c["requestedAt"])]
    answered = [c for c in requested if c["answeredAt"]]
    closed = [c for c in requested if c["closed"]]
    observations = [hours(c["requestedAt"], c["answeredAt"]) for c in answered]
    screened = any(in_period(s["screenedAt"]) for s in p["screenings"])
    out = {
        ("attributed-members", "members"): ({"initial-population": 1}, []),
        ("econsult-timeliness", "requested"): ({"initial-population": len(requested)}, []),
        ("econsult-timeliness", "answered"): ({"initial-population": len(answered)}, []),
        ("econsult-timeliness", "closed"): ({"initial-population": len(closed)}, []),
        ("hrsn-screening", "screening-rate"): ({"initial-population": 1, "denominator": 1, "numerator": int(screened)}, []),
    }
    for g in ("answer-hours-median", "answer-hours-p90"):
        out[("econsult-timeliness", g)] = ({"initial-population": len(requested), "measure-population": len(answered),
                                             "measure-observation": len(observations)}, observations)
    high = any(r["tier"] in ("high", "complex") and in_period(r["assessedAt"]) for r in p["risks"])
    active = any(c["status"] == "active" for c in p["plans"])
    bhi = any(c["status"] == "active" and c["category"] == "behavioral-health-integration" for c in p["plans"])
    out[("care-plans", "high-risk-with-active-plan")] = ({"initial-population": int(high), "denominator": int(high),
                                                          "numerator": int(high and active)}, [])
    out[("care-plans", "bhi-plan")] = ({"initial-population": int(bhi)}, [])
    for d in DOMAINS:
        positive = screened and any(in_period(s["screenedAt"]) and d in s["positive"] for s in p["screenings"])
        out[("hrsn-screening", "positive-" + d)] = ({"initial-population": int(screened), "denominator": int(screened),
                                                    "numerator": int(positive)}, [])
    return out


AGGREGATE = {"members": "count", "requested": "count", "answered": "count", "closed": "count",
             "answer-hours-median": "median", "answer-hours-p90": "p90", "screening-rate": "proportion",
             "high-risk-with-active-plan": "proportion", "bhi-plan": "count"}
for d in DOMAINS:
    AGGREGATE["positive-" + d] = "proportion"


def score(group, counts, observations):
    kind = AGGREGATE[group]
    if kind == "proportion":
        return round(counts["numerator"] / counts["denominator"], 4) if counts["denominator"] > 0 else None
    if kind in ("median", "p90") and observations:
        values = sorted(observations)
        n = len(values)
        if kind == "median":
            v = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
        else:
            v = values[max(math.ceil(0.9 * n), 1) - 1]
        return round(v, 4)
    return None


def cell(group, counts, observations):
    if any(0 < n < SUPPRESS_BELOW for n in counts.values()):
        return {"populations": {code: "masked" for code in counts}, "score": None}
    return {"populations": dict(counts), "score": score(group, counts, observations)}


def evaluate(practice):
    population = [p for p in records["patients"]
                  if any(overlaps(m["start"], m["end"]) and (practice is None or m["practice"] == practice) for m in p["memberships"])]
    totals, strata = {}, {}
    for p in population:
        values = strata_values(p)
        for key, (counts, observations) in patient_cells(p).items():
            t = totals.setdefault(key, ({}, []))
            for code, n in counts.items():
                t[0][code] = t[0].get(code, 0) + n
            t[1].extend(observations)
            for stratifier, vals in values.items():
                for v in vals:
                    s = strata.setdefault(key, {}).setdefault(stratifier, {}).setdefault(v, ({}, []))
                    for code, n in counts.items():
                        s[0][code] = s[0].get(code, 0) + n
                    s[1].extend(observations)
    measures = {}
    for (measure, group), (counts, observations) in sorted(totals.items()):
        entry = cell(group, counts, observations)
        entry["strata"] = {st: {v: cell(group, c, o) for v, (c, o) in sorted(vals.items())}
                           for st, vals in sorted(strata.get((measure, group), {}).items())}
        measures.setdefault(measure, {})[group] = entry
    return {"subject": None if practice is None else {"practiceNpi": practice}, "patients": len(population), "measures": measures}


evaluations = [evaluate(None)] + [evaluate(npi) for npi in records["practices"]]
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump({"period": [P_START, P_END], "suppressBelow": SUPPRESS_BELOW, "evaluations": evaluations}, f, indent=1, sort_keys=True)
    f.write("\n")
print("; ".join("%s: %d patients" % ((e["subject"] or {}).get("practiceNpi", "all"), e["patients"]) for e in evaluations))
