#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fixture population for the scorecard measures (issue 20, docs/SCORECARD.md).

Writes, deterministically (fixed seed), into this folder:
  roster-<payer>.csv        one roster per payer (contracts/payer-formats.md, with the optional
                            race, ethnicity, language columns)
  events.ndjson             e-consult and care-management events (contracts/econsult-event.md,
                            care-management-event.md), in the order they are to be posted
  records.json              the generator's own ground truth: patients, memberships, consults,
                            screenings (what expected.py computes the measures from)
Python 3 standard library only. Run: python3 generate.py
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20)


def npi(base9):
    digits = "80840" + base9
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions (the check digit will be appended on the right)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return base9 + str((10 - total % 10) % 10)


PAYERS = [("lakeshore-medicaid", "medicaid", "LMC"), ("northwind-commercial", "commercial", "NWC"),
          ("prairie-medicare", "medicare-advantage", "PMA")]
PRACTICES = [npi("10938174" + str(d)) for d in (1, 2, 3, 4)]
PCPS = [npi("14675839" + str(d)) for d in (1, 2, 3, 4)]
SPECIALIST = npi("188172635")
RACES = ["1002-5", "2028-9", "2054-5", "2076-8", "2106-3"]
FAMILIES = ["Okafor", "Brennan", "Nguyen", "Garcia", "Haddad", "Kowalski", "Mensah", "Larsen", "Ortiz", "Patel",
            "Yazzie", "Kealoha", "Schmidt", "Ibrahim", "Moreau"]
GIVENS = ["Ada", "Tom", "Lin", "Rosa", "Sami", "Ewa", "Kofi", "Ingrid", "Luis", "Priya", "Ana", "Noa", "Kai", "Omar", "Lea"]
N_PATIENTS = 320
PERIOD = ("2026-01-01", "2026-12-31")


def luhn_ok(n):
    digits = "80840" + n
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


for n in PRACTICES + PCPS + [SPECIALIST]:
    assert luhn_ok(n), n

patients = []
seen = set()
for i in range(N_PATIENTS):
    while True:
        family = rng.choice(FAMILIES)
        given = rng.choice(GIVENS) + chr(ord("a") + i % 26) + str(i)
        dob = "19%02d-%02d-%02d" % (rng.randint(30, 99), rng.randint(1, 12), rng.randint(1, 28))
        sex = rng.choice(["female", "male"])
        if (family, given, dob, sex) not in seen:
            seen.add((family, given, dob, sex))
            break
    r = rng.random()
    if r < 0.10:
        race = []  # not sent: UNK in strata
    elif r < 0.15:
        race = ["ASKU"]
    elif r < 0.25:
        race = sorted(rng.sample(RACES, 2))
    else:
        race = [rng.choices(RACES, weights=[1, 3, 5, 1, 8])[0]]
    e = rng.random()
    ethnicity = None if e < 0.1 else ("UNK" if e < 0.15 else ("2135-2" if e < 0.4 else "2186-5"))
    language = rng.choice([None, "en", "en", "es", "vi"])
    # coverage and attribution: one payer, some two
    payer_indexes = rng.sample(range(3), 2 if rng.random() < 0.15 else 1)
    memberships = []
    for p in payer_indexes:
        payer, lob, prefix = PAYERS[p]
        practice = rng.randrange(4)
        s = rng.random()
        if s < 0.08:
            span = ("2025-01-01", "2025-12-31")   # ended before the period: not attributed in it
        elif s < 0.2:
            span = ("2026-07-01", None)            # joined mid-year, open-ended
        elif s < 0.25:
            span = ("2026-12-31", None)            # the period's last day counts (inclusive)
        else:
            span = ("2025-07-01", "2026-12-31")
        memberships.append({"payer": payer, "lob": lob, "memberId": "%s%06d" % (prefix, i), "practice": PRACTICES[practice],
                            "pcp": PCPS[practice], "start": span[0], "end": span[1]})
    patients.append({"index": i, "mrn": "MRN-%05d" % i, "family": family, "given": given, "birthDate": dob, "sex": sex,
                     "race": race, "ethnicity": ethnicity, "language": language, "memberships": memberships,
                     "consults": [], "screenings": [], "risks": [], "plans": [], "claims": [], "episodes": [],
                     "referrals": []})

# Rosters: coverage period = attribution period.
for payer, lob, prefix in PAYERS:
    lines = ["member_id,member_last,member_first,member_dob,member_sex,line_of_business,coverage_start,coverage_end,"
             "attributed_practice_npi,attributed_pcp_npi,attribution_start,attribution_end,race,ethnicity,language"]
    for p in patients:
        for m in p["memberships"]:
            if m["payer"] != payer:
                continue
            ymd = lambda d: d.replace("-", "") if d else ""
            lines.append(",".join([m["memberId"], p["family"], p["given"], p["birthDate"].replace("-", ""),
                                   "F" if p["sex"] == "female" else "M", lob, ymd(m["start"]), ymd(m["end"]),
                                   m["practice"], m["pcp"], ymd(m["start"]), ymd(m["end"]),
                                   "|".join(p["race"]), p["ethnicity"] or "", p["language"] or ""]))
    with open(os.path.join(HERE, "roster-%s.csv" % payer), "w") as f:
        f.write("\n".join(lines) + "\n")


def envelope(p, event_id, event_type, occurred):
    coverage = []
    for m in p["memberships"]:
        c = {"payerId": m["payer"], "memberId": m["memberId"], "lineOfBusiness": m["lob"], "start": m["start"]}
        if m["end"]:
            c["end"] = m["end"]
        coverage.append(c)
    return {"eventId": event_id, "source": "scorecard-ehr", "eventType": event_type, "occurredAt": occurred,
            "patient": {"mrn": p["mrn"], "mrnSystem": "urn:oid:2.16.840.1.113883.3.7418.9", "family": p["family"],
                        "given": [p["given"]], "birthDate": p["birthDate"], "sex": p["sex"], "coverage": coverage}}


def stamp(day_of_year, minutes):
    import datetime
    base = datetime.datetime(2025, 12, 1) + datetime.timedelta(days=day_of_year, minutes=minutes)
    return base.strftime("%Y-%m-%dT%H:%M:00-05:00")


def covering(p, day):
    """The memberships (coverage = attribution period) covering a date of service."""
    return [m for m in p["memberships"] if m["start"] <= day and (m["end"] is None or m["end"] >= day)]


def bill(p, body, code, system, billing_npi, day, where):
    """A billing entry on the event (routed to the payer covering `day`, or waiting as unroutable
    when none does). A day two payers cover is not billed: which payer the gateway picks then is
    not what these measures test."""
    cover = covering(p, day)
    if len(cover) > 1:
        return
    entry = {"code": code, "system": system, "billedBy": "specialist", "npi": billing_npi, "dateOfService": day}
    if where == "billing":
        body.setdefault("billing", []).append(entry)
    else:
        body["episode"].setdefault("billing", []).append(entry)
    p["claims"].append({"code": code, "dateOfService": day, "payer": cover[0]["payer"] if cover else None,
                        "lob": cover[0]["lob"] if cover else None})


events = []
FOOD = ("88122-7", "LA28397-0", "LA28398-8")
DOMAINS = [("food-insecurity", "88122-7", "LA28397-0", "LA28398-8"),
           ("housing-instability", "71802-3", "LA31995-6", "LA31993-1"),
           ("transportation-insecurity", "93030-5", "LA33-6", "LA32-8"),
           ("utility-insecurity", "96779-4", "LA33-6", "LA32-8")]
n_event = 0
for p in patients:
    first_practice = p["memberships"][0]["practice"]
    for k in range(rng.choice([0, 0, 1, 1, 2])):
        n_event += 1
        consult_id = "EC-%05d-%d" % (p["index"], k)
        day = rng.randint(0, 400)  # 2025-12-01 .. 2027-01-05: some outside the period
        requested = stamp(day, rng.randint(8 * 60, 17 * 60))
        request = envelope(p, "req-%05d-%d" % (p["index"], k), "request", requested)
        request.update({"consultId": consult_id,
                        "requester": {"npi": p["memberships"][0]["pcp"], "name": "PCP", "role": "pcp", "organizationNpi": first_practice},
                        "specialist": {"npi": SPECIALIST, "name": "Specialist", "specialty": "207RC0000X"},
                        "question": "Question %s" % consult_id, "urgency": "routine"})
        events.append(request)
        consult = {"consultId": consult_id, "requestedAt": requested, "answeredAt": None, "closed": False}
        if rng.random() < 0.8:
            minutes = rng.randint(30, 6 * 24 * 60)
            answered = stamp(day, rng.randint(8 * 60, 17 * 60) + minutes)
            if answered <= requested:
                answered = stamp(day, 17 * 60 + 1)
            response = envelope(p, "rsp-%05d-%d" % (p["index"], k), "response", answered)
            response.update({"consultId": consult_id, "specialist": {"npi": SPECIALIST, "name": "Specialist", "specialty": "207RC0000X"},
                             "answeredAt": answered, "recommendation": "Advice", "minutesSpent": 15})
            bill(p, response, "99451", "http://www.ama-assn.org/go/cpt", SPECIALIST, answered[:10], "billing")
            events.append(response)
            consult["answeredAt"] = answered
            if rng.random() < 0.7:
                closed = envelope(p, "cls-%05d-%d" % (p["index"], k), "closed", stamp(day + 8, 9 * 60))
                closed.update({"consultId": consult_id, "minutesSpent": 10})
                events.append(closed)
                consult["closed"] = True
        p["consults"].append(consult)
    if rng.random() < 0.55:
        day = rng.randint(0, 400)
        screened = stamp(day, 10 * 60)
        answers, positive = [], []
        for domain, question, yes, no in DOMAINS:
            if rng.random() < 0.25:
                answers.append({"loinc": question, "answerLoinc": yes})
                positive.append(domain)
            else:
                answers.append({"loinc": question, "answerLoinc": no})
        screening = envelope(p, "hrsn-%05d" % p["index"], "hrsn-screening", screened)
        screening["screening"] = {"instrument": "AHC-HRSN", "answers": answers, "screenedAt": screened}
        events.append(screening)
        p["screenings"].append({"screenedAt": screened, "positive": positive})

BHI_TEAM = [("1526384916", "behavioral-health-care-manager"), ("1728394051", "psychiatric-consultant")]
CATEGORIES = ["chronic-care-management", "episodic", "self-management-support", "behavioral-health-integration"]
for p in patients:
    if rng.random() < 0.5:
        tier = rng.choice(["low", "rising", "high", "complex"])
        assessed = "%s" % stamp(rng.randint(0, 400), 0)[:10]
        risk = envelope(p, "risk-%05d" % p["index"], "risk-tier", stamp(0, 0) if assessed < "2025-12-02" else assessed + "T08:00:00-05:00")
        risk["risk"] = {"tier": tier, "method": "Practice risk score v3", "assessedAt": assessed}
        events.append(risk)
        p["risks"].append({"tier": tier, "assessedAt": assessed})
    if rng.random() < 0.4:
        category = rng.choice(CATEGORIES)
        status = "active" if rng.random() < 0.8 else "completed"
        pcp = p["memberships"][0]["pcp"]
        team = [{"npi": pcp, "role": "pcp"}] + ([{"npi": n, "role": r} for n, r in BHI_TEAM] if category == "behavioral-health-integration" else [])
        plan = envelope(p, "plan-%05d" % p["index"], "care-plan", stamp(rng.randint(0, 400), 9 * 60))
        plan["carePlan"] = {"planId": "CP-%05d" % p["index"], "status": status, "category": category,
                            "conditions": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}], "goals": ["HbA1c below 7%"],
                            "activities": [{"text": "Self-management education", "status": "scheduled"}], "careTeam": team}
        events.append(plan)
        p["plans"].append({"status": status, "category": category})

# Co-management episodes (one per patient at most) with monthly ACM billing, and social
# referrals. Drawn after everything above, so the records above keep their values.
REFERRAL_STATUSES = ["requested", "accepted", "completed", "completed", "cancelled"]
for p in patients:
    if rng.random() < 0.3:
        start = stamp(rng.randint(-60, 380), 0)[:10]   # 2025-10 .. 2026-12
        end = None if rng.random() < 0.5 else stamp(rng.randint(0, 400), 0)[:10]
        if end is not None and end < start:
            end = None
        episode_id = "EP-%05d" % p["index"]
        event = envelope(p, "cm-%05d" % p["index"], "co-management", start + "T09:00:00-05:00")
        event["episode"] = {"episodeId": episode_id, "condition": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I48.91"},
                            "specialistNpi": SPECIALIST, "pcpNpi": p["memberships"][0]["pcp"], "start": start}
        if end:
            event["episode"]["end"] = end
        year, month = int(start[:4]), int(start[5:7])
        for k in range(rng.randint(0, 5)):  # ACM for consecutive months from the start (one per month)
            y, m = year + (month - 1 + k) // 12, (month - 1 + k) % 12 + 1
            bill(p, event, "ACM", "https://fhir.alignment-gateway.org/CodeSystem/alignment-billing", SPECIALIST,
                 "%04d-%02d-%02d" % (y, m, rng.randint(1, 28)), "episode")
        events.append(event)
        p["episodes"].append({"start": start, "end": end})
    for k in range(rng.choice([0, 0, 0, 1, 2])):
        referral_id = "REF-%05d-%d" % (p["index"], k)
        status = rng.choice(REFERRAL_STATUSES)
        authored = stamp(rng.randint(0, 400), rng.randint(8 * 60, 17 * 60))
        event = envelope(p, "ref-%05d-%d" % (p["index"], k), "social-referral", authored)
        event["referral"] = {"referralId": referral_id, "domain": rng.choice([d[0] for d in DOMAINS]),
                             "toOrganization": {"name": "Community Food Bank", "id": "CBO-1"}, "status": status}
        events.append(event)
        p["referrals"].append({"authoredAt": authored, "status": status})

with open(os.path.join(HERE, "events.ndjson"), "w") as f:
    for e in events:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
with open(os.path.join(HERE, "records.json"), "w") as f:
    json.dump({"period": PERIOD, "practices": PRACTICES, "payers": [p[0] for p in PAYERS], "patients": patients}, f, indent=1)
    f.write("\n")
print("patients %d, events %d" % (len(patients), len(events)))
