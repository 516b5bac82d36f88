#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes N e-consult response events (tests/data/econsult/response.json with distinct eventIds,
# consult ids and MRNs, one 99451 billing entry each) as NDJSON, for
#   fhir-gateway map --source econsult --config CONFIG FILE
# usage: bench/econsult_make_events.py N FILE
import json
import os
import sys

count, path = int(sys.argv[1]), sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
template = json.load(open(os.path.join(here, "..", "tests", "data", "econsult", "response.json")))
with open(path, "w") as out:
    for index in range(count):
        template["eventId"] = "evt-bench-%07d" % index
        template["consultId"] = "EC-BENCH-%07d" % index
        template["patient"]["mrn"] = "NS-%07d" % index
        out.write(json.dumps(template, separators=(",", ":")) + "\n")
