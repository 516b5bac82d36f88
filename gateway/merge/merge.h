// SPDX-License-Identifier: Apache-2.0
#pragma once

// Many sources, one merged truth (DESIGN.md; issue 11). Every source's facts about a resource
// are kept as a Contribution (a row in the store, tagged with the kind of source and the
// organization that sent it, and citing its Provenance); the stored resource is `merge()` of
// all of them under precedence rules that are data (fhir_profiles/alignment/merge-rules.json,
// described in fhir_profiles/alignment/MERGE.md). The functions here are pure: contributions
// in, merged resource out, no store. The same inputs give the same bytes in any order, and a
// later access layer can merge only the contributions of organizations a client may see.

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

namespace fhir::gateway::merge {

// One source's facts about one resource.
struct Contribution {
  std::string type;          // "Patient", "Coverage", "Group"
  std::string id;            // the resource id the contribution is about
  std::string contributor;   // unique per (type, id): kind|organization (Group: |member patient)
  std::string kind;          // "ehr", "roster", "roster-full", "claims"
  std::string organization;  // the EHR `source` or the payer id (for access filtering)
  std::string payer;         // the payer a Coverage belongs to (empty for other types)
  std::string rank;          // occurredAt (UTC) of an event, asOf of a roster; later wins
  std::string tiebreak;      // lowest wins among equal ranks (source + eventId, record id)
  std::string provenance;    // id of the Provenance that records the contribution
  std::string patient_id;    // the Patient the contribution is about (Patient id, beneficiary, member)
  std::string json;          // the resource as this source mapped it (a roster-full marker: {"listed": [...]})
};

// How one element is merged.
struct ElementRule {
  std::string take;               // "first" (precedence), "union", "members"
  std::vector<std::string> from;  // kinds allowed to give the element, in precedence order
  bool patient = false;           // a Patient reference: pointed at the patient's survivor
};

struct TypeRules {
  std::map<std::string, ElementRule, std::less<>> elements;
  ElementRule other;                   // every element not named
  std::vector<std::string> survivor;   // Patient: kinds in survivor precedence
  std::vector<std::string> conflict_on;  // Patient: elements that must agree for a link
};

class MergeRules {
 public:
  // Parses merge-rules.json; errors name the member.
  static Result<MergeRules> parse(std::string_view text);
  static Result<MergeRules> load(const std::string& path);
  // The file beside the bundled alignment profiles.
  static std::string defaultPath();

  const TypeRules* of(std::string_view type) const;
  bool merged(std::string_view type) const { return of(type) != nullptr; }

 private:
  std::map<std::string, TypeRules, std::less<>> types_;
};

// Patient id -> surviving Patient id (absent: itself).
using Survivors = std::map<std::string, std::string, std::less<>>;

struct Merged {
  std::string json;                     // the merged resource (compact, members in a fixed order)
  std::map<std::string, std::string> winners;  // element -> kind of the contribution it came from
  std::set<std::string> provenance;     // Provenance ids of the contributions used
};

// Merges the contributions of one resource (all of one type and id, any order). Deterministic.
Result<Merged> merge(const MergeRules& rules, const std::vector<Contribution>& contributions,
                     const Survivors& survivors = {});

// The surviving Patient of a cluster: the lowest id of the first kind in `survivor` precedence
// that a member has a contribution of. `kinds` maps each member to the kinds it came from.
std::string chooseSurvivor(const MergeRules& rules, const std::map<std::string, std::set<std::string>>& kinds);

// The elements (of TypeRules::conflict_on) on which two Patients disagree, both having them.
std::vector<std::string> conflictingElements(const MergeRules& rules, const json::Value& a, const json::Value& b);

// `2026-10-02T14:03:11-05:00` -> `2026-10-02T19:03:11Z`, so ranks of events compare as text;
// an HL7 v2 DTM with an offset (MSH-7 `20261002140311-0500`) too, so v2 and JSON events of one
// source compare; anything else (a date, a DTM without offset) is returned as is.
std::string utcRank(std::string_view date_time);

}  // namespace fhir::gateway::merge
