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


def overlapping(span_start, span_end):
    return span_start <= P_END and (span_end is None or span_end >= P_START)


# Each group's populations, in the order the report lists them (a total lists every one, zero or not).
POPULATIONS = {}
MEASURE_OBS = ("initial-population", "measure-population", "measure-observation")


def units(p):
    """Per measure group: what this patient adds, as units (counts, observations, strata values).
    A group whose basis is the patient (boolean) gives one unit per patient, zeros included, with
    the patient's strata; a group whose basis is a resource (a consult, an episode, a claim, a
    referral) gives one unit per resource in any of its populations, each stratified by its own
    values (for claims: the payer and line of business of the coverage it was billed to, its code,
    its month)."""
    values = strata_values(p)
    out = {}

    def add(key, codes, counts, observations=(), extra=None):
        POPULATIONS[key] = codes
        strata = dict(values)
        strata.update(extra or {})
        out.setdefault(key, []).append(({c: counts.get(c, 0) for c in codes}, list(observations), strata))

    # Patient basis.
    add(("attributed-members", "members"), ("initial-population",), {"initial-population": 1})
    screened = any(in_period(s["screenedAt"]) for s in p["screenings"])
    add(("hrsn-screening", "screening-rate"), ("initial-population", "denominator", "numerator"),
        {"initial-population": 1, "denominator": 1, "numerator": int(screened)})
    for d in DOMAINS:
        positive = screened and any(in_period(s["screenedAt"]) and d in s["positive"] for s in p["screenings"])
        add(("hrsn-screening", "positive-" + d), ("initial-population", "denominator", "numerator"),
            {"initial-population": int(screened), "denominator": int(screened), "numerator": int(positive)})
    high = any(r["tier"] in ("high", "complex") and in_period(r["assessedAt"]) for r in p["risks"])
    active = any(c["status"] == "active" for c in p["plans"])
    bhi = any(c["status"] == "active" and c["category"] == "behavioral-health-integration" for c in p["plans"])
    add(("care-plans", "high-risk-with-active-plan"), ("initial-population", "denominator", "numerator"),
        {"initial-population": int(high), "denominator": int(high), "numerator": int(high and active)})
    add(("care-plans", "bhi-plan"), ("initial-population",), {"initial-population": int(bhi)})

    # Consult basis: the consults requested in the period.
    for key, _ in (("requested", 0), ("answered", 0), ("closed", 0), ("answer-hours-median", 0), ("answer-hours-p90", 0)):
        POPULATIONS[("econsult-timeliness", key)] = MEASURE_OBS if key.startswith("answer-hours") else ("initial-population",)
    for c in p["consults"]:
        if not in_period(c["requestedAt"]):
            continue
        add(("econsult-timeliness", "requested"), ("initial-population",), {"initial-population": 1})
        if c["answeredAt"]:
            add(("econsult-timeliness", "answered"), ("initial-population",), {"initial-population": 1})
        if c["closed"]:
            add(("econsult-timeliness", "closed"), ("initial-population",), {"initial-population": 1})
        answered = 1 if c["answeredAt"] else 0
        observations = [hours(c["requestedAt"], c["answeredAt"])] if answered else []
        for g in ("answer-hours-median", "answer-hours-p90"):
            add(("econsult-timeliness", g), MEASURE_OBS,
                {"initial-population": 1, "measure-population": answered, "measure-observation": answered}, observations)

    # Episode basis: co-management episodes active at some time in the period.
    POPULATIONS[("comanagement", "episodes-active")] = ("initial-population",)
    for e in p["episodes"]:
        if overlapping(e["start"], e["end"]):
            add(("comanagement", "episodes-active"), ("initial-population",), {"initial-population": 1})

    # Claim basis: billing claims with a date of service in the period.
    for key in (("comanagement", "acm-claims"), ("billing-claims", "routed"), ("billing-claims", "unroutable")):
        POPULATIONS[key] = ("initial-population",)
    for c in p["claims"]:
        if not in_period(c["dateOfService"]):
            continue
        claim_strata = {"payer": [c["payer"] or "UNK"], "line-of-business": [c["lob"] or "UNK"],
                        "billing-code": [c["code"]], "month": [c["dateOfService"][:7]]}
        if c["code"] == "ACM":
            add(("comanagement", "acm-claims"), ("initial-population",), {"initial-population": 1},
                extra={k: claim_strata[k] for k in ("payer", "line-of-business", "month")})
        group = "routed" if c["payer"] else "unroutable"
        add(("billing-claims", group), ("initial-population",), {"initial-population": 1},
            extra={k: claim_strata[k] for k in ("payer", "line-of-business", "billing-code")})

    # Referral basis: social referrals made in the period; cancelled ones are excluded; completed.
    codes = ("initial-population", "denominator", "denominator-exclusion", "numerator")
    POPULATIONS[("referral-completion", "completion-rate")] = codes
    for r in p["referrals"]:
        if in_period(r["authoredAt"]):
            add(("referral-completion", "completion-rate"), codes,
                {"initial-population": 1, "denominator": 1, "denominator-exclusion": int(r["status"] == "cancelled"),
                 "numerator": int(r["status"] == "completed")})
    return out


AGGREGATE = {"members": "count", "requested": "count", "answered": "count", "closed": "count",
             "answer-hours-median": "median", "answer-hours-p90": "p90", "screening-rate": "proportion",
             "high-risk-with-active-plan": "proportion", "bhi-plan": "count", "episodes-active": "count",
             "acm-claims": "count", "routed": "count", "unroutable": "count", "completion-rate": "proportion"}
for d in DOMAINS:
    AGGREGATE["positive-" + d] = "proportion"
# The stratifiers of each measure's groups: the four equity ones, and for claims and months more.
EQUITY = ["race", "ethnicity", "payer", "line-of-business"]
STRATIFIERS = {("comanagement", "acm-claims"): EQUITY + ["month"], ("billing-claims", "routed"): EQUITY + ["billing-code"],
               ("billing-claims", "unroutable"): EQUITY + ["billing-code"]}


def score(group, counts, observations):
    kind = AGGREGATE[group]
    if kind == "proportion":
        base = counts["denominator"] - counts.get("denominator-exclusion", 0)
        return round(counts["numerator"] / base, 4) if base > 0 else None
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
        for key, patient_units in units(p).items():
            for counts, observations, values in patient_units:
                t = totals.setdefault(key, ({}, []))
                for code, n in counts.items():
                    t[0][code] = t[0].get(code, 0) + n
                t[1].extend(observations)
                for stratifier in STRATIFIERS.get(key, EQUITY):
                    for v in values[stratifier]:
                        s = strata.setdefault(key, {}).setdefault(stratifier, {}).setdefault(v, ({}, []))
                        for code, n in counts.items():
                            s[0][code] = s[0].get(code, 0) + n
                        s[1].extend(observations)
    measures = {}
    for (measure, group), codes in sorted(POPULATIONS.items()):
        counts, observations = totals.get((measure, group), ({}, []))
        counts = {code: counts.get(code, 0) for code in codes}
        entry = cell(group, counts, observations)
        entry["strata"] = {st: {v: cell(group, c, o) for v, (c, o) in sorted(strata.get((measure, group), {}).get(st, {}).items())}
                           for st in STRATIFIERS.get((measure, group), EQUITY)}
        measures.setdefault(measure, {})[group] = entry
    return {"subject": None if practice is None else {"practiceNpi": practice}, "patients": len(population), "measures": measures}


evaluations = [evaluate(None)] + [evaluate(npi) for npi in records["practices"]]
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump({"period": [P_START, P_END], "suppressBelow": SUPPRESS_BELOW, "evaluations": evaluations}, f, indent=1, sort_keys=True)
    f.write("\n")
print("; ".join("%s: %d patients" % ((e["subject"] or {}).get("practiceNpi", "all"), e["patients"]) for e in evaluations))
