#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes N e-consult responses with one 99451 billing entry each and distinct event ids, consult
# ids and MRNs: as NDJSON events (from tests/data/econsult/response.json), or with --v2 as
# RRI^I12 messages (the RRI of tests/data/mappers/econsult-v2/messages.hl7), for
#   fhir-gateway map --source econsult|econsult-v2 --config CONFIG FILE
# usage: bench/econsult_make_events.py N FILE [--v2]
import json
import os
import sys

count, path = int(sys.argv[1]), sys.argv[2]
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
if "--v2" in sys.argv[3:]:
    stream = open(os.path.join(here, "mappers", "econsult-v2", "messages.hl7"), newline="").read()
    rri = stream[stream.index("\rMSH|") + 1:]
    with open(path, "w", newline="") as out:
        for index in range(count):
            out.write(rri.replace("evt-7f3a-0002", "evt-bench-%07d" % index)
                      .replace("EC-2026-000451", "EC-BENCH-%07d" % index)
                      .replace("NS-884213", "NS-%07d" % index))
    sys.exit(0)
template = json.load(open(os.path.join(here, "econsult", "response.json")))
with open(path, "w") as out:
    for index in range(count):
        template["eventId"] = "evt-bench-%07d" % index
        template["consultId"] = "EC-BENCH-%07d" % index
        template["patient"]["mrn"] = "NS-%07d" % index
        out.write(json.dumps(template, separators=(",", ":")) + "\n")
