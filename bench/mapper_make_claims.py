#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a lakeshore-medicaid CSV claim file of about SIZE_MB megabytes: claims of two lines,
valid NPIs, dates and amounts (docs/BENCHMARKS.md, section Mappers).

usage: bench/mapper_make_claims.py SIZE_MB OUTPUT
"""
import sys

HEADER = ("claim_id,line_no,member_id,member_last,member_first,member_dob,member_sex,rendering_npi,"
          "billing_npi,billing_tin,dos_from,dos_to,place_of_service,procedure_code,modifier_1,modifier_2,"
          "dx_1,dx_2,dx_3,dx_4,units,charge_amount,paid_amount,claim_status\r\n")
NAMES = [("Okafor", "Adaeze", "F"), ("Brennan", "Thomas", "M"), ("Lindqvist", "Maja", "F"), ("Osei", "Kwame", "M")]
NPIS = ["1467583922", "1881726354", "1972635480", "1316258429"]


def main():
    size = int(sys.argv[1]) * 1024 * 1024
    written = 0
    claim = 0
    with open(sys.argv[2], "w", newline="") as out:
        out.write(HEADER)
        chunk = []
        while written < size:
            claim += 1
            last, first, sex = NAMES[claim % 4]
            member = "LMC%08d" % (claim % 5000000)
            dob = "19%02d%02d%02d" % (40 + claim % 60, 1 + claim % 12, 1 + claim % 28)
            day = "202610%02d" % (1 + claim % 28)
            status = "PDA"[claim % 3]
            for line, (code, charge, paid) in enumerate((("99214", "180.00", "112.50"), ("83036", "65.00", "0.00")), 1):
                row = ("LC-%d,%d,%s,%s,%s,%s,%s,%s,1093817462,361234567,%s,%s,11,%s,,,E119,I10,,,1,%s,%s,%s\r\n"
                       % (claim, line, member, last, first, dob, sex, NPIS[claim % 4], day, day, code, charge, paid, status))
                chunk.append(row)
                written += len(row)
            if len(chunk) >= 20000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


if __name__ == "__main__":
    main()
