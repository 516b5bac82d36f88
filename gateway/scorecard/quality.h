// SPDX-License-Identifier: Apache-2.0
#pragma once

// The data-quality scorecard (issue 20, Build 4; docs/SCORECARD.md "Data quality"): per source
// (each payer, each EHR `source`) and per design element, what was received, accepted and
// quarantined, the top validation failures, the feed lag per destination, unroutable claims and
// conflicts. Computed from what the store already records, nothing of its own:
//  - accepted: the mapping Provenance every accepted record carries (one per record, its
//    `agent` the source, its `entity` the channel, its `target`s the resources it wrote);
//  - quarantined: the quarantine entries still quarantined (a replayed and accepted one has its
//    Provenance), with their OperationOutcome; an event's `source` and `eventType` from its
//    payload, a payer file's payer from the channel;
//  - feed lag: per outbox destination, commit (the row's creation) to the receiver's first 2xx
//    (attempt start + its duration), p50 and p99 over the latest rows;
//  - unroutable claims, patient conflicts and routing conflicts: the store's lists.
// Design elements are data (fhir_profiles/alignment/design-elements.json).
// Thread-safe: a DesignElements is immutable; computeQuality only reads the store.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/store/store.h"

namespace fhir::gateway::scorecard {

struct DesignElementRule {
  std::string channel;      // channel kind: econsult, care-management, roster, claims
  std::string event_type;   // empty: any
  std::string target_type;  // empty: any
};

struct DesignElement {
  std::string id;
  std::string title;
  std::vector<DesignElementRule> rules;
};

class DesignElements {
 public:
  // The JSON of design-elements.json; errors name the member.
  static Result<DesignElements> parse(std::string_view text);
  // fhir_profiles/alignment/design-elements.json (FHIR_GATEWAY_PROFILES overrides the folder),
  // loaded once per process.
  static Result<std::shared_ptr<const DesignElements>> bundled();

  // The element of a record: its channel kind, its event type (empty: not known) and the
  // resource types it wrote (empty: not known). Null: none matches.
  const DesignElement* classify(std::string_view channel, std::string_view event_type,
                                const std::vector<std::string>& target_types) const;
  const std::vector<DesignElement>& elements() const { return elements_; }

 private:
  std::vector<DesignElement> elements_;
};

// One validation failure as counted: the profile the issue names (empty: the source format's
// mapping, before any profile), the element (FHIRPath or source location, indexes and line
// numbers left out so that rows group), the rule (issue code, and the constraint, value set or
// concept map it names).
struct FailureCount {
  std::string profile;
  std::string element;
  std::string rule;
  int64_t count = 0;
};

// One row of the scorecard: a source or a design element.
struct QualityRow {
  std::string key;    // source id ("lakeshore-medicaid", "riverview-ehr") or element id
  std::string title;
  std::string kind;   // "payer", "ehr", "element"
  int64_t accepted = 0;
  int64_t quarantined = 0;
  std::vector<FailureCount> failures;  // most frequent first, at most kTopFailures
  int64_t received() const { return accepted + quarantined; }
};

// One delivery destination ("payer:<id>", "feed:<id>", "subscription:<id>").
struct FeedLag {
  std::string destination;
  int64_t rows = 0;        // rows looked at (the latest kLagRows)
  int64_t delivered = 0;   // of those, answered 2xx
  int64_t pending = 0;     // not delivered yet (whole destination)
  int64_t dead = 0;        // dead letters (whole destination)
  int64_t p50_ms = -1;     // commit to 2xx; -1: nothing delivered
  int64_t p99_ms = -1;
};

struct QualityReport {
  std::string generated_at;
  std::vector<QualityRow> sources;   // payers then EHR sources, by key
  std::vector<QualityRow> elements;  // in design-elements.json order, then "unclassified"
  std::vector<FeedLag> feeds;
  int64_t unroutable = 0;
  int64_t conflicts = 0;
  int64_t routing_conflicts = 0;
};

inline constexpr size_t kTopFailures = 5;
inline constexpr int64_t kLagRows = 500;

// Reads the store (Provenance through search, quarantine, outbox, unroutable, conflicts).
// Errors are store failures (503), never "no data".
Result<QualityReport> computeQuality(Store& store, const std::string& base_url, const DesignElements& elements);
// The two parts of computeQuality, for figures kept apart (they change at different times: the
// records with the data and the quarantine, the feeds with every delivery).
// Everything but `feeds`: the Provenances a page at a time, the quarantine, the store's lists.
// When `stopping` becomes true the computation ends early with an error.
Result<QualityReport> computeRecordQuality(Store& store, const std::string& base_url, const DesignElements& elements,
                                           const std::atomic<bool>* stopping = nullptr);
// QualityReport::feeds: per outbox destination, its depths and its lag over the latest kLagRows.
Result<std::vector<FeedLag>> computeFeedLags(Store& store);

// {"resourceType": ..., } is not FHIR: a plain JSON document
// {"generatedAt", "sources": [row], "elements": [row], "feeds": [...], "unroutable", "conflicts",
//  "routingConflicts"}, row = {"key", "title", "kind", "received", "accepted", "quarantined",
//  "quarantinedShare", "failures": [{"profile", "element", "rule", "count"}]}.
std::string qualityJson(const QualityReport& report);

// The failure counted for one OperationOutcome issue (exposed for tests).
FailureCount failureOf(std::string_view diagnostics, std::string_view code, std::string_view location);

}  // namespace fhir::gateway::scorecard
